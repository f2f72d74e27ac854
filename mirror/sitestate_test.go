package mirror

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDecideSite(t *testing.T) {
	st := (&siteState{}).merge("demo", stateRecord{Version: "2.0.0", Sequence: 200, Root: "sha256:b", MirroredAt: time.Unix(0, 0)})
	st = st.merge("demo", stateRecord{Version: "1.0.0", Sequence: 100, Root: "sha256:a"})
	id := func(v string, seq uint64, root string) bundleID {
		return bundleID{name: "demo", version: v, sequence: seq, root: root}
	}
	for _, tc := range []struct {
		name          string
		st            *siteState
		id            bundleID
		allow, rule   bool
		want          error
		wantDowngrade bool
	}{
		{"nothing mirrored yet", nil, id("1.0.0", 1, "sha256:x"), false, false, nil, false},
		{"newer", st, id("3.0.0", 300, "sha256:c"), false, false, nil, false},
		{"the same bundle again", st, id("2.0.0", 200, "sha256:b"), false, false, nil, false},
		{"an older recorded bundle", st, id("1.0.0", 100, "sha256:a"), false, false, ErrReplay, false},
		{"older, flag without the rule", st, id("1.5.0", 150, "sha256:d"), true, false, ErrDowngradeNotAllowed, false},
		{"older, flag and rule", st, id("1.5.0", 150, "sha256:d"), true, true, nil, true},
		{"same sequence, other content", st, id("2.0.1", 200, "sha256:e"), false, false, ErrReplay, false},
		{"same sequence, other content, downgrade allowed", st, id("2.0.1", 200, "sha256:e"), true, true, ErrReplay, false},
		{"same version, other content, newer sequence", st, id("2.0.0", 300, "sha256:f"), false, false, ErrReplay, false},
		{"highest without its record", &siteState{SchemaVersion: 1, Name: "demo", HighestSequence: 500}, id("5.0.0", 500, "sha256:g"), false, false, ErrReplay, false},
	} {
		dg, err := decideSite(tc.st, tc.id, "r/airlock-state:demo", tc.allow, tc.rule)
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) || dg != tc.wantDowngrade {
			t.Errorf("%s: downgrade %v, err %v; want %v, %v", tc.name, dg, err, tc.wantDowngrade, tc.want)
		}
	}
}

func TestSiteStateMerge(t *testing.T) {
	var st *siteState
	for i := range maxStateRecords + 20 {
		st = st.merge("demo", stateRecord{Version: "v", Sequence: uint64(1000 - i), Root: "sha256:x"})
	}
	if len(st.Records) != maxStateRecords || st.HighestSequence != 1000 {
		t.Fatalf("%d records, highest %d", len(st.Records), st.HighestSequence)
	}
	if st.Records[0].Sequence != 1000-maxStateRecords+1 || st.Records[len(st.Records)-1].Sequence != 1000 {
		t.Errorf("kept %d..%d, want the highest", st.Records[0].Sequence, st.Records[len(st.Records)-1].Sequence)
	}
	again := st.merge("demo", stateRecord{Version: "v", Sequence: 1000, Root: "sha256:x"})
	if len(again.Records) != len(st.Records) {
		t.Error("merging a recorded bundle added a record")
	}
}

func TestUploadOffset(t *testing.T) {
	for _, tc := range []struct {
		h    string
		want int64
		ok   bool
	}{
		{"", 0, true}, {"0-0", 0, true}, {"bytes=0-0", 0, true}, {"0-99", 100, true}, {"bytes=0-1023", 1024, true},
		{"5-10", 0, false}, {"0-", 0, false}, {"0--1", 0, false}, {"junk", 0, false},
	} {
		got, ok := uploadOffset(tc.h)
		if got != tc.want || ok != tc.ok {
			t.Errorf("uploadOffset(%q) = %d, %v; want %d, %v", tc.h, got, ok, tc.want, tc.ok)
		}
	}
}

func TestIntentTag(t *testing.T) {
	id := bundleID{name: "demo", version: "1.0.1", sequence: 200, root: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
	tag := intentTag(id)
	if len(tag) > 128 || !strings.HasPrefix(tag, "_intent-") {
		t.Fatalf("intent tag %q", tag)
	}
	long := bundleID{name: strings.Repeat("a", 128), sequence: ^uint64(0), root: id.root}
	if n := len(intentTag(long)); n > 128 {
		t.Errorf("the longest intent tag has %d characters", n)
	}
	in, ok := parseIntentTag(intentPrefix("demo"), tag)
	if !ok || in.sequence != 200 || in.root12 != "0123456789ab" {
		t.Errorf("parse %q: %+v, %v", tag, in, ok)
	}
	for _, bad := range []string{
		"demo", // the state document
		intentPrefix("other") + "200-0123456789ab", // another name
		intentPrefix("demo") + "0200-0123456789ab", // not canonical
		intentPrefix("demo") + "200-0123",          // short root
		intentPrefix("demo") + "x-0123456789ab",
	} {
		if _, ok := parseIntentTag(intentPrefix("demo"), bad); ok {
			t.Errorf("%q parsed as an intent of demo", bad)
		}
	}
}

// TestSiteViewMerged: live intents count as records (and raise the highest
// sequence); the document alone is used as it is.
func TestSiteViewMerged(t *testing.T) {
	doc := (&siteState{}).merge("demo", stateRecord{Version: "1.5.0", Sequence: 150, Root: "sha256:m"})
	v := &siteView{doc: doc, live: []stateRecord{{Version: "2.0.0", Sequence: 200, Root: "sha256:n", pending: true}}}
	st := v.merged("demo")
	if st.HighestSequence != 200 || len(st.Records) != 2 {
		t.Fatalf("merged: highest %d, %d records", st.HighestSequence, len(st.Records))
	}
	_, err := decideSite(st, bundleID{name: "demo", version: "1.5.0", sequence: 150, root: "sha256:m"}, "r/airlock-state:demo", false, false)
	var fe *FreshnessError
	if !errors.Is(err, ErrReplay) || !errors.As(err, &fe) || fe.Highest != 200 || !strings.Contains(fe.Reason, "has not completed") {
		t.Errorf("a replay below a pending intent: %v", err)
	}
	if _, err := decideSite(st, bundleID{name: "demo", version: "2.0.1", sequence: 200, root: "sha256:o"}, "r", false, false); !errors.Is(err, ErrReplay) {
		t.Errorf("another bundle with the sequence of a pending intent: %v", err)
	}
	if _, err := decideSite(st, bundleID{name: "demo", version: "2.0.0", sequence: 200, root: "sha256:n"}, "r", false, false); err != nil {
		t.Errorf("the bundle of the pending intent again: %v", err)
	}
	if (&siteView{}).merged("demo") != nil {
		t.Error("an empty view is not \"nothing mirrored\"")
	}
}
