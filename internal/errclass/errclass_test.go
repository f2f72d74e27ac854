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
		{Mark(Rejected, errors.New("refused")), Rejected},
		{Mark(Usage, errors.New("flag")), Usage},
		{Mark(CouldNotRun, fmt.Errorf("re-read: %w", errBad)), CouldNotRun},
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
	if Mark(Rejected, nil) != nil {
		t.Error("nil is classed")
	}
}
