// Package install places the files and models of a verified bundle under an
// install root, atomically, locked and journaled, and refuses bundles that
// would roll the root back (THREATS.md rules 6, 9, 10, 13 and 14).
//
// Layout of an install root DIR (everything below is owned by airlock;
// nothing else in DIR is touched):
//
//	DIR/.airlock/state.json          what is installed (see State), replaced atomically
//	DIR/.airlock/lock                flock(2) lock; holds "pid N since TIME" while held
//	DIR/.airlock/staging-*/          files being written by a running install
//	DIR/releases/NAME/VERSION/...    one directory per installed release
//	DIR/current/NAME                 symbolic link to ../releases/NAME/VERSION
//
// An install verifies the bundle in one streaming pass (package verify),
// decides freshness against the state before a body byte is read, stages
// every file under .airlock, fsyncs it, writes the release record (marked
// pending, see records.go), renames the staging directory to
// releases/NAME/VERSION, writes the state (the commit point) and then
// switches the current link. Killed at any instant, the root shows the old
// release or the new one; the next install, status, rollback or prune
// repairs a link that disagrees with the state and removes leftovers.
package install
