// Package credentials reads registry credentials the way docker, podman
// and skopeo do (REGISTRY_AUTH_FILE, the Docker config with its credential
// helpers, containers' auth.json) and asks each source once per registry
// per run. pack (through source) and mirror share it.
package credentials
