package main

import (
	"io"
	"log"
)

// nilLogger silences the in-process registry's request log.
func nilLogger() *log.Logger { return log.New(io.Discard, "", 0) }
