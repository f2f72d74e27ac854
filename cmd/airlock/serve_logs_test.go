package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

// TestServeLogsDropClientErrors checks that the library's log records of a
// client's mistake or of normal traffic do not reach the operator as
// warnings or errors, and that a server failure does.
func TestServeLogsDropClientErrors(t *testing.T) {
	var buf bytes.Buffer
	hook := slogHook{slog.New(slog.NewTextHandler(&buf, nil))}
	entry := func(level logrus.Level, msg string, data logrus.Fields) *logrus.Entry {
		return &logrus.Entry{Level: level, Message: msg, Data: data}
	}
	quiet := []*logrus.Entry{
		entry(logrus.WarnLevel, "looking up blob with canonical target: sha512:ab -> sha256:cd", logrus.Fields{}),
		entry(logrus.ErrorLevel, "canonical digest does match provided digest", logrus.Fields{"provided": "sha256:ab"}),
		entry(logrus.ErrorLevel, "error canceling upload after error: already closed", logrus.Fields{}),
		entry(logrus.ErrorLevel, `payload digest does not match: "sha256:ab" != "sha256:cd"`, logrus.Fields{}),
		entry(logrus.ErrorLevel, "error closing blobwriter: already closed", logrus.Fields{}),
		entry(logrus.ErrorLevel, "response completed with error", logrus.Fields{"http.response.status": 404}),
	}
	for _, e := range quiet {
		if err := hook.Fire(e); err != nil {
			t.Fatal(err)
		}
	}
	if buf.Len() != 0 {
		t.Errorf("client errors were logged:\n%s", buf.String())
	}
	if err := hook.Fire(entry(logrus.ErrorLevel, "filesystem: permission denied", logrus.Fields{"http.response.status": 500})); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "level=ERROR") || !strings.Contains(buf.String(), "permission denied") {
		t.Errorf("a server failure was not logged as an error: %q", buf.String())
	}
}
