package suggest

import "testing"

func TestNearest(t *testing.T) {
	cmds := []string{"pack", "sign", "verify", "inspect", "mirror", "serve", "install", "status"}
	cases := []struct{ word, want string }{
		{"verfy", "verify"},
		{"instal", "install"},
		{"Mirorr", "mirror"},
		{"pakc", "pack"},
		{"xyz", ""},
		{"v", ""},
		{"deploy", ""},
	}
	for _, c := range cases {
		if got := Nearest(c.word, cmds); got != c.want {
			t.Errorf("Nearest(%q) = %q, want %q", c.word, got, c.want)
		}
	}
	if got := Nearest("image", []string{"name", "version", "images", "models", "files", "sboms"}); got != "images" {
		t.Errorf("Nearest(image) = %q", got)
	}
	if distance("kitten", "sitting") != 3 || distance("", "abc") != 3 || distance("a", "a") != 0 {
		t.Error("distance")
	}
}
