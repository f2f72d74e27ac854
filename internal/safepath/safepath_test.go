package safepath

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	good := []string{"etc/app.yaml", "models/resnet50", "a", "a/b/c.d", "..a", "a..b/c"}
	bad := []string{"", ".", "/etc/passwd", "../x", "a/../../x", "a/..", "a//b", "a/./b", "./a", "a/", `a\b`, `..\x`, "a\x00b", "a\nb", strings.Repeat("a", MaxLen+1), "\xff"}
	for _, p := range good {
		if err := Check(p); err != nil {
			t.Errorf("Check(%q) = %v", p, err)
		}
	}
	for _, p := range bad {
		if err := Check(p); !errors.Is(err, ErrUnsafe) {
			t.Errorf("Check(%q) = %v, want ErrUnsafe", p, err)
		}
	}
}

func TestOverlaps(t *testing.T) {
	t.Parallel()
	cases := []struct {
		a, b string
		want bool
	}{{"a", "a", true}, {"a", "a/b", true}, {"a/b", "a", true}, {"a", "ab", false}, {"a/b", "a/c", false}}
	for _, c := range cases {
		if got := Overlaps(c.a, c.b); got != c.want {
			t.Errorf("Overlaps(%q,%q) = %v", c.a, c.b, got)
		}
	}
}
