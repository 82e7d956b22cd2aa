//go:build !unix

package raft

import "os"

// lockFile opens path; on this platform nothing stops a second process.
func lockFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
}
