package bundle

import "regexp"

var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	// semverRE is the regular expression suggested by semver.org for SemVer 2.0.0.
	semverRE = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)
	modeRE   = regexp.MustCompile(`^0?[0-7]{3}$`)
)

// MaxNameLength bounds bundle and model names and versions.
const MaxNameLength = 128

// ValidName reports whether s is a valid bundle or model name:
// [a-z0-9][a-z0-9._-]*, at most MaxNameLength characters.
func ValidName(s string) bool { return len(s) <= MaxNameLength && nameRE.MatchString(s) }

// ValidVersion reports whether s is a semantic version (SemVer 2.0.0, no
// leading v), at most MaxNameLength characters.
func ValidVersion(s string) bool { return len(s) <= MaxNameLength && semverRE.MatchString(s) }

// ValidMode reports whether s is a file mode as airlock.yaml and bundle.json
// write it: octal permission bits, no setuid, setgid or sticky bit.
func ValidMode(s string) bool { return modeRE.MatchString(s) }

var platformRE = regexp.MustCompile(`^[a-z0-9_]+/[a-z0-9_]+(/[a-z0-9_]+)?$`)

// ValidPlatform reports whether s is a platform as airlock.yaml and
// `airlock pack --platform` write it: os/arch or os/arch/variant.
func ValidPlatform(s string) bool { return platformRE.MatchString(s) }
