package gateway_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/streamgate/streamgate/gateway"
)

// The example file documents every field: it must load, and equal the defaults.
func TestExampleConfigIsTheDefault(t *testing.T) {
	cfg, err := gateway.LoadConfig("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, gateway.DefaultConfig()) {
		t.Fatalf("config.example.yaml differs from the defaults:\n%+v\n%+v", cfg, gateway.DefaultConfig())
	}
}

func TestConfigRejectsMistakes(t *testing.T) {
	for name, body := range map[string]string{
		"unknown key":  "data_dirr: x\n",
		"bad fsync":    "storage:\n  fsync: sometimes\n",
		"bad size":     "storage:\n  disk_budget: lots\n",
		"bad address":  "http_addr: nowhere\n",
		"bad loglevel": "log_level: loud\n",
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			os.WriteFile(p, []byte(body), 0o644)
			if _, err := gateway.LoadConfig(p); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("storage:\n  disk_budget: 2GiB\n"), 0o644)
	cfg, err := gateway.LoadConfig(p)
	if err != nil || cfg.Storage.DiskBudget != 2<<30 {
		t.Fatalf("disk_budget 2GiB: %v %d", err, cfg.Storage.DiskBudget)
	}
}
