package cidr

import "testing"

func TestParse(t *testing.T) {
	got, err := Parse(" 10.0.0.0/8,,fd00::/8 , 192.168.1.7, ::ffff:172.16.0.0/108 ")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "fd00::/8", "192.168.1.7/32", "172.16.0.0/12"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "ten", "10.0.0.0/8;", "::ffff:1.2.3.4/64"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
