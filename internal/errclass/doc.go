// Package errclass gives every error airlock returns one of three classes,
// decided where the error is made: the input was rejected (a bundle that is
// untrusted, breaks the policy, is malformed, or that install refuses), the
// command could not run (I/O, network, a missing file), or the command line
// was wrong. Only cmd/airlock turns classes into exit codes.
//
// A package declares its sentinels with New (or wraps a typed error with
// Reject), and errors.Is keeps working on them as before; Of finds the
// class through any wrapping.
package errclass
