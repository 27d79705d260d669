//go:build e2e

package harness

import (
	"fmt"
	"net"
	"strconv"
)

// freePort asks the kernel for a free TCP port on 127.0.0.1. The port is
// released before it is returned, so another process could take it in
// between; on a machine running one suite at a time that race is rare and
// shows up as a clear "address already in use" in the component's log.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freeAddr is freePort as "127.0.0.1:PORT".
func freeAddr() (string, error) {
	p, err := freePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}
