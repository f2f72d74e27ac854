package registry

import (
	"net"

	"golang.org/x/sys/unix"
)

// setNotSentLowat caps the bytes c's socket keeps queued but not yet sent
// (TCP_NOTSENT_LOWAT). Without it the send buffer autotunes to megabytes
// and Linux wakes a blocked writer only once half of it is free, so a
// client that reads steadily but slowly could keep one write of ours
// blocked for longer than the write timeout. Best effort: an error leaves
// the socket as it was.
func setNotSentLowat(c net.Conn, n int) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, n)
	})
}
