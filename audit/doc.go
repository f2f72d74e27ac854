// Package audit keeps a tamper-evident log of what an isolated site did with
// bundles: an append-only file of JSON lines, one entry per mirror, install,
// rollback or prune, each carrying the sha256 of the line before it, so that
// editing, deleting or reordering any line breaks the chain that Verify
// checks.
//
// Appends are atomic and durable: the file is opened with O_APPEND and locked
// (flock) against concurrent writers, the whole line including its newline is
// written with one write call, and the file is fsynced before Append returns.
// A crash can therefore only leave a trailing partial line without a newline,
// never a damaged earlier line. Verify reports such a line (Report.Partial)
// without failing the lines before it, and the next Append repairs it: it
// cuts the partial bytes off and records their size and sha256 in the new
// entry's Repaired field.
//
// The chain proves the order and content of every line up to the last one.
// Removing lines from the end is not visible in the file alone: note the head
// digest (Report.Head, printed by `airlock audit verify`) somewhere else and
// pass it to VerifyOptions.Head to check that nothing after it went missing.
//
// The package is a leaf: it imports no registry, bundle or verify code.
package audit
