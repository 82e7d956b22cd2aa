package grpcresolver

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/switchyard-io/switchyard/client"
	"github.com/switchyard-io/switchyard/store"
)

// Each namespace's client keeps its own disk snapshot: the builder's own
// namespace in CacheDir, others in CacheDir/ns-{namespace}; a target without
// ?ns= shares the default's client, and a namespace that is no name (a path
// out of the folder) is refused.
func TestBuilderClientsPerNamespace(t *testing.T) {
	dir := t.TempDir()
	b := NewBuilder(client.Config{Servers: []string{"127.0.0.1:1"}, CacheDir: dir})
	t.Cleanup(func() { b.Close() })
	def, err := b.client("")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := b.client(store.DefaultNamespace); err != nil || again != def {
		t.Errorf("ns=%s: %p, %v; want the client of targets without ns= (%p)", store.DefaultNamespace, again, err, def)
	}
	prod, err := b.client("prod")
	if err != nil || prod == def {
		t.Fatalf("ns=prod: %p, %v; want a client of its own", prod, err)
	}
	if st, err := os.Stat(filepath.Join(dir, "ns-prod")); err != nil || !st.IsDir() {
		t.Errorf("ns=prod's cache folder: %v", err)
	}
	if _, err := b.client("../elsewhere"); err == nil {
		t.Error("ns=../elsewhere accepted")
	}
	if _, err := os.Stat(filepath.Join(dir, "..", "elsewhere")); err == nil {
		t.Error("ns=../elsewhere made a folder outside CacheDir")
	}
}
