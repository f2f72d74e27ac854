package errclass

import (
	"errors"
	"fmt"
	"testing"
)

func TestOf(t *testing.T) {
	errBad := New(Rejected, "bad")
	errIO := New(CouldNotRun, "io")
	cases := []struct {
		err  error
		want Class
	}{
		{nil, CouldNotRun},
		{errors.New("plain"), CouldNotRun},
		{errBad, Rejected},
		{fmt.Errorf("reading entry x: %w", errBad), Rejected},
		{Reject(errors.New("refused")), Rejected},
		{AsUsage(errors.New("flag")), Usage},
		// The first classed error in the tree decides: a source problem that
		// wraps an integrity error is still a source problem.
		{fmt.Errorf("%w: %w", errIO, errBad), CouldNotRun},
		{fmt.Errorf("%w: %w", errBad, errIO), Rejected},
	}
	for i, c := range cases {
		if got := Of(c.err); got != c.want {
			t.Errorf("case %d (%v): class %v, want %v", i, c.err, got, c.want)
		}
	}
	if !errors.Is(fmt.Errorf("x: %w", errBad), errBad) {
		t.Error("errors.Is does not find a sentinel")
	}
	if Reject(nil) != nil || AsUsage(nil) != nil {
		t.Error("nil is classed")
	}
}
