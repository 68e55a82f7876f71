// Package internal holds code that gantry's Google Cloud backends share.
// The packages below it know Google's APIs but no one backend:
//
//   - gcperr classifies Google API errors into gantry's sentinels and
//     retries idempotent calls on UNAVAILABLE;
//   - meta stores a container's identity and spec on a cloud resource as
//     labels and annotations, within Google's label rules;
//   - cloudlog builds Cloud Logging filters and reads a container's output
//     from Cloud Logging as a gantry.LogReader;
//   - poll runs one fetch per tick for any number of waiters.
package internal
