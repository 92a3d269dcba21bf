package multihost_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/multihost"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func ptr(n int) *int { return &n }

func TestFirstSlurmHost(t *testing.T) {
	for _, tc := range []struct{ list, want, err string }{
		{list: "node07", want: "node07"},
		{list: "node[07-09,12],gpu01", want: "node07"},
		{list: "a1,a2", want: "a1"},
		{list: "nid0[0100-0103]", want: "nid00100"},
		{list: "rack[1-2]-n[001-004]", want: "rack1-n001"},
		{list: "gpu[3,1]", want: "gpu3"},
		{list: "node[1-2", err: "unclosed"},
		{list: "node1-2]", err: "unbalanced"},
		{list: "", err: "empty"},
	} {
		t.Run(tc.list, func(t *testing.T) {
			got, err := multihost.FirstSlurmHost(tc.list)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestResolvePrecedenceAndErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "multi.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("distributed_type: DEEPSPEED\nnum_machines: 4\nmachine_rank: 0\nmain_process_ip: 10.0.0.1\nmain_process_port: 7000\nnum_processes: 32\n"), 0o644))
	accel, err := multihost.FromAccelerateConfig(cfg)
	require.NoError(t, err)
	slurm, err := multihost.FromSlurm(env(map[string]string{"SLURM_NNODES": "2", "SLURM_NTASKS": "2", "SLURM_PROCID": "1", "SLURM_JOB_NODELIST": "n[1-2]"}))
	require.NoError(t, err)
	torch, err := multihost.FromEnv(env(map[string]string{"MASTER_ADDR": "head", "NODE_RANK": "3"}))
	require.NoError(t, err)

	cases := []struct {
		name    string
		sources []multihost.Launch
		want    multihost.World
		err     string
	}{
		{name: "nothing: one host", want: multihost.World{Nodes: 1, From: map[string]string{}}},
		{name: "slurm alone", sources: []multihost.Launch{slurm},
			want: multihost.World{Nodes: 2, Rank: 1, Coordinator: "n1:29500", From: map[string]string{
				"num_machines": "SLURM_NNODES", "machine_rank": "SLURM_PROCID", "main_process_ip": "SLURM_JOB_NODELIST"}}},
		{name: "config over slurm", sources: []multihost.Launch{accel, slurm},
			want: multihost.World{Nodes: 4, Rank: 0, Coordinator: "10.0.0.1:7000", From: map[string]string{
				"num_machines": cfg + ": num_machines", "machine_rank": cfg + ": machine_rank",
				"main_process_ip": cfg + ": main_process_ip", "main_process_port": cfg + ": main_process_port"}}},
		{name: "flags over env over config", sources: []multihost.Launch{multihost.FromFlags(nil, ptr(2), "", nil), torch, accel},
			want: multihost.World{Nodes: 4, Rank: 2, Coordinator: "head:7000", From: map[string]string{
				"num_machines": cfg + ": num_machines", "machine_rank": "--machine_rank",
				"main_process_ip": "MASTER_ADDR", "main_process_port": cfg + ": main_process_port"}}},
		{name: "rank beyond nodes", sources: []multihost.Launch{torch, slurm},
			err: "machine_rank 3 (from NODE_RANK) must be in [0, 2): num_machines is 2 (from SLURM_NNODES)"},
		{name: "no address", sources: []multihost.Launch{multihost.FromFlags(ptr(2), ptr(1), "", nil)},
			err: "num_machines 2 (from --num_machines) needs the address of rank 0"},
		{name: "bad port", sources: []multihost.Launch{multihost.FromFlags(ptr(2), ptr(1), "h", ptr(70000))},
			err: "main_process_port 70000 (from --main_process_port) is not a TCP port"},
		{name: "zero machines", sources: []multihost.Launch{multihost.FromFlags(ptr(0), nil, "", nil)},
			err: "num_machines 0 (from --num_machines) must be at least 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, err := multihost.Resolve(tc.sources...)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, w)
		})
	}
}

func TestLaunchSourceErrors(t *testing.T) {
	_, err := multihost.FromSlurm(env(map[string]string{"SLURM_NNODES": "2", "SLURM_NTASKS": "16"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--ntasks-per-node=1")
	_, err = multihost.FromEnv(env(map[string]string{"MASTER_PORT": "http"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `MASTER_PORT="http" is not an integer`)
	_, err = multihost.FromAccelerateConfig(filepath.Join(t.TempDir(), "missing.yaml"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "missing.yaml")
}
