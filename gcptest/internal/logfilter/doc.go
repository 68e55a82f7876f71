// Package logfilter parses and evaluates the Cloud Logging query language,
// the filter syntax of ListLogEntries and TailLogEntries, for the gcptest
// emulator. It covers the part of the language that real clients send and
// exposes what an entry store needs to use indexes (Constraints, TimeRange).
//
//	f, err := logfilter.Parse(`resource.type="cloud_run_job" AND severity>=ERROR`)
//	if err != nil { ... } // a *ParseError naming the position
//	ok := f.Match(entry)
//
// # Rules applied
//
// From the "Logging query language" reference,
// https://cloud.google.com/logging/docs/view/logging-query-language, and the
// ListLogEntriesRequest.filter field documentation:
//
//   - A query is a Boolean expression: ["NOT"] comparison { ("AND" | "OR")
//     ["NOT"] comparison }. NOT binds tightest, then OR, then AND: the page's
//     example `"a" OR NOT "b" AND NOT "c" OR "d"` means
//     `("a" OR (NOT "b")) AND ((NOT "c") OR "d")`.
//   - Terms written next to each other are joined by an implicit AND.
//   - AND, OR and NOT are keywords only in upper case; "-" directly before a
//     term is NOT. Parentheses group.
//   - A comparison is FIELD OP VALUE with OP one of = != < <= > >= : (has)
//     =~ !~ (RE2 regular expressions). "FIELD:*" tests that the field exists.
//   - FIELD OP (V1 OR V2) is shorthand for (FIELD OP V1 OR FIELD OP V2), and
//     likewise with AND.
//   - A value on its own is a global restriction: it matches when a field of
//     the entry has (contains) it. See Global for the fields searched.
//   - Values are double-quoted strings with backslash escapes, or bare
//     words. Path segments that are not plain names are quoted, as in
//     labels."run.googleapis.com/execution_name".
//   - String comparisons are not case sensitive; ":" is a substring test.
//   - timestamp and receiveTimestamp compare as times (RFC 3339 values);
//     severity compares by level (DEFAULT < DEBUG < INFO < NOTICE < WARNING <
//     ERROR < CRITICAL < ALERT < EMERGENCY), by name or number. Other
//     ordered comparisons are numeric when both sides are numbers.
//   - logName compares with the log ID URL-unescaped on both sides, so the
//     stored form projects/P/logs/run.googleapis.com%2Fstdout and the written
//     form projects/P/logs/run.googleapis.com/stdout are the same log.
//   - A filter is at most 20,000 characters.
//
// Choices of this emulator where the page is silent: a comparison on a
// field the entry does not have is false for every operator (so NOT of it
// is true); fields outside LogEntry are a parse error; LogEntry fields this
// evaluator does not read (httpRequest, operation, sourceLocation,
// protoPayload, ...) are accepted and treated as absent; the SEARCH and
// other functions, and comments, are not supported and fail to parse.
package logfilter
