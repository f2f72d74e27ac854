package main

import "strings"

// commandExits says, per command, what each exit status means for it. The
// codes are the same for every command (see exitCodes); the reasons differ.
// A command missing here shows the general text.
var commandExits = map[string]string{
	"pack": `  0  the bundle was written
  1  could not pack: invalid airlock.yaml, a source that cannot be read or pulled,
     a registry or disk error (nothing is left at the output path)
  2  usage error, or a statement option refused (--channel, --expires, too many --key)`,
	"sign": `  0  the bundle carries the new signature(s)
  1  could not sign: a key or password problem, I/O, a bundle that is busy
  2  usage error (sign needs a file, not standard input)
  3  the bundle is malformed, or it would carry more than 64 signatures`,
	"verify": `  0  VERIFIED: trusted by the policy, every byte matches its signed digest
  1  could not verify: a missing or unreadable bundle or policy, an unusable policy
  2  usage error
  3  REJECTED: untrusted, breaks the policy, malformed, truncated or tampered`,
	"inspect": `  0  the head was read (signatures are not checked: run airlock verify)
  1  could not read the bundle or the policy
  2  usage error
  3  the head is malformed`,
	"mirror": `  0  everything was verified and pushed; every tag set resolves
  1  could not mirror: registry unreachable, refused credentials, disk, policy file
  2  usage error
  3  REJECTED: the bundle failed verification (nothing was tagged), or the site state
     refused it: an older sequence than one mirrored or claimed, a version reused with
     other content, or a newer bundle claimed by another run while this one tagged
     (mirror that bundle again)`,
	"serve": `  0  the registry stopped cleanly (Ctrl-C)
  1  could not serve: the data directory, the TLS files, the port, an unreadable bundle or policy
  2  usage error (a non-loopback address without --allow-remote, --bundle without --policy)
  3  REJECTED (--bundle): the bundle's head is untrusted, breaks the policy or is malformed`,
	"install": `  0  installed, switched back to, or already current
  1  could not install: locked root, unusable state (run status --repair), no space, I/O
  2  usage error
  3  REJECTED: verification failed, a replay, downgrade or sequence jump, an unsafe path`,
	"status": `  0  the state was read (or repaired with --repair)
  1  could not read the state or the root
  2  usage error`,
	"rollback": `  0  the previous release is current again
  1  could not roll back: nothing to roll back to, locked root, unusable state
  2  usage error`,
	"check": `  0  every installed file matches what was installed
  1  could not check: locked root, unusable state
  2  usage error
  3  drift found: a file changed, went missing or appeared`,
	"prune": `  0  old releases were removed (or there was nothing to remove)
  1  could not prune: locked root, unusable state, I/O
  2  usage error`,
	"key": `  0  the key was written or read
  1  could not: the file exists, a bad password, an unsupported key
  2  usage error`,
	"report": `  0  the report was written: the bundle verified (or, with --head-only, is trusted)
  1  could not report: a missing or unreadable bundle or policy, the output file
  2  usage error
  3  REJECTED: the report was written and says why`,
	"audit": `  0  the log's chain is intact (verify), or it was shown (show)
  1  could not read the log
  2  usage error
  3  the chain is broken: a line was edited, removed or reordered`,
	"version": `  0  printed
  2  usage error`,
}

// exitHelp is the "Exit status" section of a command's --help.
func exitHelp(name string) string {
	if text, ok := commandExits[name]; ok {
		return "Exit status:\n" + strings.TrimRight(text, "\n") + "\n"
	}
	return exitCodesHelp
}
