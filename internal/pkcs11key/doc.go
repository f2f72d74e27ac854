// Package pkcs11key signs with a private key that never leaves a PKCS#11
// token (an HSM, a smartcard, SoftHSM2), named by an RFC 7512 "pkcs11:" URI.
// A *Signer is a bundle.Signer, so a bundle, a mirrored image or anything
// else airlock signs with a key file can be signed with a token instead; the
// signature format does not change.
//
// It links the PKCS#11 module at run time through cgo
// (github.com/ThalesGroup/crypto11), so only the CLI imports it.
package pkcs11key
