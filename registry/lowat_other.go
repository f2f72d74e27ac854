//go:build !linux

package registry

import "net"

// setNotSentLowat does nothing where TCP_NOTSENT_LOWAT is not set (see
// lowat_linux.go): there, the write timeout counts from the last write
// that the kernel's send buffer took.
func setNotSentLowat(net.Conn, int) {}
