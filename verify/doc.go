// Package verify decides, offline, whether a bundle is what a trusted team
// shipped: it checks the signatures in the bundle's head against a trust
// policy, evaluates the policy's rule, and only then streams the body,
// checking every byte against the signed digests. It never touches the
// network (a test in package bundle proves it does not link net/http).
package verify
