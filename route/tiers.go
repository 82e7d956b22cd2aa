package route

import "github.com/switchyard-io/switchyard/store"

// Tier is one step of a client's own failover: the instances it uses while
// every nearer tier is unusable.
type Tier struct {
	// Levels are the levels the tier holds, nearest first.
	Levels []Level
	// Instances are the tier's serving instances (enabled, weight > 0),
	// nearest level first, by id within a level.
	Instances []*store.Instance
	// Usable says, for each of Instances, whether it may receive traffic
	// now: healthy, or any instance of a protected scope.
	Usable []bool
}

// Tiers orders every serving instance of a service for a client that fails
// over by itself, as xDS clients do between priorities. The first tier is
// Select's scope: the levels Select answers with after spill-over, with
// exactly Select's candidates usable. Each level beyond the scope is a
// tier of its own, nearest first, its healthy instances usable. A client
// that uses the first tier while any of it is usable, and the next
// otherwise, sends its traffic where Select would; when health changes,
// the tiers are computed again and the first grows or shrinks with
// min_healthy_ratio, as Select's scope does. No tier is empty.
func Tiers(in Input) []Tier {
	levels := group(in)
	if len(levels) == 0 {
		return nil
	}
	end, protected := scopeOf(levels, in.Settings)
	tiers := make([]Tier, 0, 1+len(levels)-end)
	var first Tier
	for _, lv := range levels[:end] {
		first.add(lv, protected)
	}
	tiers = append(tiers, first)
	for _, lv := range levels[end:] {
		var t Tier
		t.add(lv, false)
		tiers = append(tiers, t)
	}
	return tiers
}

func (t *Tier) add(lv level, protected bool) {
	t.Levels = append(t.Levels, lv.level)
	for _, i := range lv.serving {
		t.Instances = append(t.Instances, i)
		t.Usable = append(t.Usable, i.Healthy || protected)
	}
}
