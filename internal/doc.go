// Package internal holds code that gantry's backends and agent share.
// Most packages below it know Google's APIs but no one backend:
//
//   - gcperr classifies Google API errors into gantry's sentinels and
//     retries idempotent calls on UNAVAILABLE;
//   - meta stores a container's identity and spec on a cloud resource as
//     labels and annotations, within Google's label rules;
//   - naming makes container IDs and names and finds a container as
//     Docker does (ID, prefix, name, /name);
//   - cloudlog builds Cloud Logging filters and reads a container's output
//     from Cloud Logging as a gantry.LogReader;
//   - poll runs one fetch per tick for any number of waiters;
//   - quota keeps a Runtime's calls within one per-minute budget;
//   - lro waits for Google's long-running operations;
//   - imageconfig reads an image's ENTRYPOINT, CMD and the rest of its
//     config from its registry, cached by digest;
//   - health applies Docker's healthcheck rules (defaults, the starting,
//     healthy and unhealthy states with the failing streak, the probes),
//     for the fake and the agent, which run the monitor themselves;
//   - testregistry, for tests only, runs an in-memory image registry and
//     pushes the agent image and small images to it.
package internal
