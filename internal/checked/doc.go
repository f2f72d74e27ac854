// Package checked provides the one reader that guards every trust boundary:
// it passes through exactly the number of bytes a signed descriptor declares
// and fails unless those bytes hash to the declared digest.
package checked
