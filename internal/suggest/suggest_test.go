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

func TestUnknownYAMLField(t *testing.T) {
	type inner struct {
		Target string `yaml:"target"`
		Source string `yaml:"source"`
	}
	type doc struct {
		Name  string  `yaml:"name"`
		Files []inner `yaml:"files"`
		Skip  string  `yaml:"-"`
	}
	key, near, ok := UnknownYAMLField("field targt not found in type suggest.inner", doc{})
	if !ok || key != "targt" || near != "target" {
		t.Errorf("got %q %q %v", key, near, ok)
	}
	if _, near, ok := UnknownYAMLField("field fils not found in type suggest.doc", doc{}); !ok || near != "files" {
		t.Errorf("top level: %q %v", near, ok)
	}
	if _, _, ok := UnknownYAMLField("cannot unmarshal !!str into int", doc{}); ok {
		t.Error("matched another message")
	}
}
