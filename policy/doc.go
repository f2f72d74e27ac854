// Package policy is airlock's trust policy: which public keys are trusted,
// and for each bundle name how many distinct keys must have signed and what
// else a bundle must satisfy (channel, age, SBOMs, platforms). It parses the
// policy file strictly, rejects unsafe or ambiguous policies before any
// bundle is read, and evaluates the facts established by verification into
// a decision. It is pure: the only I/O is reading the files it is pointed at
// (Load) or through the function it is given (Parse), and it never touches
// the network.
package policy
