package testkit

import (
	"errors"
	"sync"
)

// control holds the process of a registry started by Start, so that a test
// can take it down and bring it back.
type control struct {
	bin, config string
	mu          sync.Mutex
	proc        *process
}

func (c *control) current() *process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proc
}

// errInProcess is returned by Stop and Restart for StartInProcess registries.
var errInProcess = errors.New("testregistry: an in-process registry cannot be stopped or restarted")

// Stop ends the registry process started by Start (SIGTERM, then SIGKILL
// after 5 s), as a registry outage; its storage stays. Connections to Host
// are then refused until Restart.
func (r *Registry) Stop() error {
	if r.ctl == nil {
		return errInProcess
	}
	return r.ctl.current().stop()
}

// Restart starts the registry again on the same address, configuration and
// storage, and returns once it answers GET /v2/.
func (r *Registry) Restart() error {
	if r.ctl == nil {
		return errInProcess
	}
	c := r.ctl
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.proc.stop(); err != nil {
		return err
	}
	p, err := start(c.bin, c.config)
	if err != nil {
		return err
	}
	c.proc = p
	return p.waitReady(r.Host)
}
