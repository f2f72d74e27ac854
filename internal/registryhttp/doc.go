// Package registryhttp is the HTTP transport airlock uses to talk to
// registries, at pack time (source) and at mirror time (mirror): TLS
// verification with extra CAs, bounded connection setup, a stall timeout on
// every read and write, and the rule for which errors are worth a retry.
package registryhttp
