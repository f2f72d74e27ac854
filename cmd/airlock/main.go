// Command airlock carries software releases across an air gap and proves, on
// the far side, that what arrived is exactly what a trusted team shipped.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/airlock-dev/airlock/internal/startgc"
)

// The collector, held off by startgc while the libraries initialize, is
// back on once every package but this one is initialized (in tests too).
func init() { startgc.Release() }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], newEnv(os.Stdin, os.Stdout, os.Stderr))
	stop()
	os.Exit(code)
}
