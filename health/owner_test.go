package health

import (
	"fmt"
	"math"
	"testing"
)

func TestOwnerSpreadsAndMovesOnlyAShare(t *testing.T) {
	const n = 30000
	keys := make([]Key, n)
	for i := range keys {
		keys[i] = Key{"default", fmt.Sprintf("svc-%d", i%50), fmt.Sprintf("i-%d", i)}
	}
	three := []string{"s1", "s2", "s3"}
	four := []string{"s1", "s2", "s3", "s4"}
	two := []string{"s1", "s3"}
	count := map[string]int{}
	moved4, moved2 := 0, 0
	for _, k := range keys {
		o3 := Owner(k, three)
		count[o3]++
		if o3 != Owner(k, []string{"s3", "s1", "s2"}) {
			t.Fatal("owner depends on the order of the server list")
		}
		if o4 := Owner(k, four); o4 != o3 {
			moved4++
			if o4 != "s4" {
				t.Fatalf("%v moved from %s to %s when s4 joined", k, o3, o4)
			}
		}
		if o2 := Owner(k, two); o2 != o3 {
			moved2++
			if o3 != "s2" {
				t.Fatalf("%v moved from %s when s2 left", k, o3)
			}
		}
	}
	for _, s := range three {
		if share := float64(count[s]) / n; math.Abs(share-1.0/3) > 0.02 {
			t.Errorf("%s owns %.3f of the instances, want about 1/3", s, share)
		}
	}
	if share := float64(moved4) / n; math.Abs(share-0.25) > 0.02 {
		t.Errorf("a fourth server took %.3f of the instances, want about 1/4", share)
	}
	if moved2 != count["s2"] {
		t.Errorf("%d instances moved when s2 left, it owned %d", moved2, count["s2"])
	}
	if Owner(keys[0], nil) != "" {
		t.Error("owner among no servers")
	}
}
