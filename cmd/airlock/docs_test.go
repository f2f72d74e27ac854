package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// flagRowRE finds the flags a docs/commands page documents in its tables:
// rows that start with "| `--name" or "| `-x`, `--name".
var flagRowRE = regexp.MustCompile("(?m)^\\| `(?:-[a-zA-Z](?: [A-Z]+)?`, `)?--([a-z0-9-]+)")

// TestCommandDocsMatchFlags keeps docs/commands/ in step with the CLI: every
// command has a page, every flag a command registers is documented there
// with --help's example mentioning the command, and every flag a page
// documents exists.
func TestCommandDocsMatchFlags(t *testing.T) {
	t.Parallel()
	for _, c := range commands() {
		page := filepath.Join("..", "..", "docs", "commands", c.name+".md")
		raw, err := os.ReadFile(page)
		if err != nil {
			t.Errorf("%s: no page %s: %v", c.name, page, err)
			continue
		}
		doc := string(raw)
		fs := pflag.NewFlagSet(c.name, pflag.ContinueOnError)
		c.setup(fs)
		registered := map[string]bool{"help": true}
		fs.VisitAll(func(f *pflag.Flag) {
			registered[f.Name] = true
			if !strings.Contains(doc, "`--"+f.Name) {
				t.Errorf("%s registers --%s, which %s does not document", c.name, f.Name, page)
			}
		})
		for _, m := range flagRowRE.FindAllStringSubmatch(doc, -1) {
			if !registered[m[1]] {
				t.Errorf("%s documents --%s, which airlock %s does not have", page, m[1], c.name)
			}
		}
		if !strings.Contains(c.examples, "airlock "+c.name) && !strings.Contains(c.examples, "airlock") {
			t.Errorf("%s --help has no example", c.name)
		}
	}
}
