package node

import "testing"

func TestDefaultListenAddr(t *testing.T) {
	for _, tt := range []struct {
		bootstrap []string
		want      string
	}{
		{nil, "127.0.0.1:0"},
		{[]string{"127.0.0.1:7946", "127.0.0.1:7947"}, "127.0.0.1:0"},
		{[]string{"[::1]:7946"}, "[::1]:0"},
		{[]string{"10.77.0.1:7946", "10.78.0.1:7946"}, "0.0.0.0:0"},
		{[]string{"127.0.0.1:7946", "10.77.0.1:7946"}, "0.0.0.0:0"},
		{[]string{"[fd00:77::1]:7946"}, "[::]:0"},
		{[]string{"[::ffff:10.0.0.1]:7946"}, "0.0.0.0:0"},
		{[]string{"10.77.0.1:7946", "[fd00:77::1]:7946"}, ":0"},
		{[]string{"lab-host-1:7946"}, ":0"},
	} {
		if got := DefaultListenAddr(tt.bootstrap); got != tt.want {
			t.Errorf("DefaultListenAddr(%v) = %q, want %q", tt.bootstrap, got, tt.want)
		}
	}
}

func TestCheckAdvertise(t *testing.T) {
	for _, good := range []string{"", "10.77.0.1:7946", "[fd00:77::1]:7946", "host1.lab.example:7946"} {
		if err := CheckAdvertise(good); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
	for _, bad := range []string{"10.77.0.1", ":7946", "10.77.0.1:0", "10.77.0.1:http", "10.77.0.1:70000",
		"127.0.0.1:7946", "[::1]:7946", "0.0.0.0:7946", "[::]:7946", "224.0.0.1:7946"} {
		if err := CheckAdvertise(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
