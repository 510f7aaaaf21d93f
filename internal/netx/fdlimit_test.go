package netx

import "testing"

// TestBudget: the two caps and the reserve never add up to more than the
// file limit, so neither listener can take the process to EMFILE.
func TestBudget(t *testing.T) {
	for _, n := range []int{256, 1024, 20_000, 1 << 20} {
		mqtt, http := budget(n)
		reserve := min(fdReserve, n/4)
		if mqtt+http+reserve > n || mqtt < http {
			t.Errorf("limit %d: mqtt %d + http %d + reserve %d", n, mqtt, http, reserve)
		}
		t.Logf("limit %d: mqtt %d, http %d, reserve %d", n, mqtt, http, reserve)
	}
	if _, _, ok := FDBudget(); !ok {
		t.Error("the file limit of this process could not be read")
	}
}
