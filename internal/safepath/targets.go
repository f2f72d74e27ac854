package safepath

// Targets finds, among the paths added so far, the first one (in the order
// they were added) that overlaps a given path p: p itself, a path q that p
// starts with followed by "/" (p lies inside q), or a path that starts with
// p followed by "/" (it lies inside p). A file target "etc/app" and another
// target "etc/app/x" cannot both exist. Paths are compared byte for byte:
// no case folding or Unicode normalisation (Set adds those). Each look-up
// and each addition costs one map probe per "/" in the path, so checking n
// targets against each other takes time linear in n where a pairwise check
// takes n^2 (targets_test.go keeps the pairwise check as the oracle). The
// zero value is not usable; call NewTargets.
type Targets struct {
	paths []string
	exact map[string]int // path -> index of its first addition
	below map[string]int // p such that some path starts with p+"/" -> index of the first such path
}

// NewTargets returns an empty Targets.
func NewTargets() *Targets {
	return &Targets{exact: map[string]int{}, below: map[string]int{}}
}

// Overlapping returns the first added path that overlaps p, and whether
// there is one.
func (t *Targets) Overlapping(p string) (string, bool) {
	first := -1
	consider := func(i int, ok bool) {
		if ok && (first < 0 || i < first) {
			first = i
		}
	}
	i, ok := t.exact[p]
	consider(i, ok) // the same path
	i, ok = t.below[p]
	consider(i, ok) // a path that starts with p+"/"
	for j := 0; j < len(p); j++ {
		if p[j] == '/' {
			i, ok = t.exact[p[:j]]
			consider(i, ok) // p starts with that path+"/"
		}
	}
	if first < 0 {
		return "", false
	}
	return t.paths[first], true
}

// Add records p, whether or not it overlaps a path added before.
func (t *Targets) Add(p string) {
	n := len(t.paths)
	t.paths = append(t.paths, p)
	if _, ok := t.exact[p]; !ok {
		t.exact[p] = n
	}
	for j := 0; j < len(p); j++ {
		if p[j] != '/' {
			continue
		}
		if _, ok := t.below[p[:j]]; !ok {
			t.below[p[:j]] = n
		}
	}
}
