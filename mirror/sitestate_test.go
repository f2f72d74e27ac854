package mirror

import (
	"errors"
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
