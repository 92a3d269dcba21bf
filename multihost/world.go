package multihost

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DefaultPort is the coordinator's port when no source names one: torch.distributed's and
// accelerate's default main_process_port.
const DefaultPort = 29500

// Launch is what one source says about a job's layout. A nil field (or an empty IP) means the
// source does not say; Resolve takes each field from the first source that does.
type Launch struct {
	// Source names where the values came from in errors: "--machine_rank", "SLURM_PROCID", a file.
	Source          string
	NumMachines     *int
	MachineRank     *int
	MainProcessIP   string
	MainProcessPort *int
	// names of the individual settings in this source (for errors); filled by the From… readers.
	keys launchKeys
}

type launchKeys struct{ machines, rank, ip, port string }

// World is one host's place in a multi-host job: Nodes processes (one per host, each driving
// all of its host's devices), this one being Rank, with rank 0 serving the rendezvous at
// Coordinator ("host:port").
type World struct {
	Nodes       int
	Rank        int
	Coordinator string
	// From says which setting gave each value ("num_machines", "machine_rank", "main_process_ip",
	// "main_process_port" → e.g. "SLURM_NNODES", "--machine_rank", "zero3.yaml: machine_rank").
	From map[string]string
}

// MultiHost reports whether the job spans more than one host.
func (w World) MultiHost() bool { return w.Nodes > 1 }

// FromFlags is the layout given on the command line with accelerate launch's flag names
// (--num_machines, --machine_rank, --main_process_ip, --main_process_port); nil means the flag
// was not given.
func FromFlags(numMachines, machineRank *int, mainProcessIP string, mainProcessPort *int) Launch {
	return Launch{Source: "flags", NumMachines: numMachines, MachineRank: machineRank,
		MainProcessIP: mainProcessIP, MainProcessPort: mainProcessPort,
		keys: launchKeys{"--num_machines", "--machine_rank", "--main_process_ip", "--main_process_port"}}
}

// FromEnv reads torch.distributed's variables: MASTER_ADDR, MASTER_PORT, NODE_RANK and NNODES
// (torchrun's names for the host rank and count).
func FromEnv(getenv func(string) string) (Launch, error) {
	l := Launch{Source: "environment", MainProcessIP: strings.TrimSpace(getenv("MASTER_ADDR")),
		keys: launchKeys{"NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT"}}
	var err error
	if l.NumMachines, err = envInt(getenv, "NNODES"); err != nil {
		return Launch{}, err
	}
	if l.MachineRank, err = envInt(getenv, "NODE_RANK"); err != nil {
		return Launch{}, err
	}
	if l.MainProcessPort, err = envInt(getenv, "MASTER_PORT"); err != nil {
		return Launch{}, err
	}
	return l, nil
}

// FromSlurm reads a Slurm step's variables: SLURM_NNODES hosts, this task's SLURM_PROCID, and
// the first host of SLURM_JOB_NODELIST as the coordinator (the seed's launch.slurm does the same
// with `scontrol show hostnames | head -n1`). Slurm must run one task per node: one process
// drives all of a host's devices.
func FromSlurm(getenv func(string) string) (Launch, error) {
	l := Launch{Source: "Slurm", keys: launchKeys{"SLURM_NNODES", "SLURM_PROCID", "SLURM_JOB_NODELIST", ""}}
	var err error
	if l.NumMachines, err = envInt(getenv, "SLURM_NNODES"); err != nil {
		return Launch{}, err
	}
	if l.MachineRank, err = envInt(getenv, "SLURM_PROCID"); err != nil {
		return Launch{}, err
	}
	tasks, err := envInt(getenv, "SLURM_NTASKS")
	if err != nil {
		return Launch{}, err
	}
	if tasks != nil && l.NumMachines != nil && *tasks != *l.NumMachines {
		return Launch{}, fmt.Errorf("Slurm runs SLURM_NTASKS=%d tasks on SLURM_NNODES=%d nodes: run one task per node (#SBATCH --ntasks-per-node=1), since one process drives all of a node's devices",
			*tasks, *l.NumMachines)
	}
	if list := strings.TrimSpace(getenv("SLURM_JOB_NODELIST")); list != "" {
		if l.MainProcessIP, err = FirstSlurmHost(list); err != nil {
			return Launch{}, fmt.Errorf("SLURM_JOB_NODELIST=%q: %w", list, err)
		}
	}
	return l, nil
}

// FromAccelerateConfig reads the machine keys of an accelerate config file: num_machines,
// machine_rank, main_process_ip and main_process_port.
func FromAccelerateConfig(path string) (Launch, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Launch{}, fmt.Errorf("accelerate config: %w", err)
	}
	var cfg struct {
		NumMachines     *int   `yaml:"num_machines"`
		MachineRank     *int   `yaml:"machine_rank"`
		MainProcessIP   string `yaml:"main_process_ip"`
		MainProcessPort *int   `yaml:"main_process_port"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		return Launch{}, fmt.Errorf("accelerate config %s: %w", path, err)
	}
	return Launch{Source: path, NumMachines: cfg.NumMachines, MachineRank: cfg.MachineRank,
		MainProcessIP: strings.TrimSpace(cfg.MainProcessIP), MainProcessPort: cfg.MainProcessPort,
		keys: launchKeys{path + ": num_machines", path + ": machine_rank", path + ": main_process_ip", path + ": main_process_port"}}, nil
}

// Resolve takes each setting from the first source that gives it (pass them in precedence
// order: flags, environment, accelerate config, Slurm) and checks the result: at least one
// node, 0 ≤ rank < nodes, and for several nodes a coordinator address (the port defaults to
// DefaultPort).
func Resolve(sources ...Launch) (World, error) {
	w := World{Nodes: 1, From: map[string]string{}}
	var ip string
	port := DefaultPort
	for _, s := range sources {
		if s.NumMachines != nil && w.From["num_machines"] == "" {
			w.Nodes, w.From["num_machines"] = *s.NumMachines, s.key(s.keys.machines)
		}
		if s.MachineRank != nil && w.From["machine_rank"] == "" {
			w.Rank, w.From["machine_rank"] = *s.MachineRank, s.key(s.keys.rank)
		}
		if s.MainProcessIP != "" && ip == "" {
			ip, w.From["main_process_ip"] = s.MainProcessIP, s.key(s.keys.ip)
		}
		if s.MainProcessPort != nil && w.From["main_process_port"] == "" {
			port, w.From["main_process_port"] = *s.MainProcessPort, s.key(s.keys.port)
		}
	}
	from := func(k string) string {
		if f := w.From[k]; f != "" {
			return " (from " + f + ")"
		}
		return " (default)"
	}
	if w.Nodes < 1 {
		return World{}, fmt.Errorf("num_machines %d%s must be at least 1", w.Nodes, from("num_machines"))
	}
	if w.Rank < 0 || w.Rank >= w.Nodes {
		return World{}, fmt.Errorf("machine_rank %d%s must be in [0, %d): num_machines is %d%s",
			w.Rank, from("machine_rank"), w.Nodes, w.Nodes, from("num_machines"))
	}
	if w.Nodes == 1 {
		return w, nil
	}
	if ip == "" {
		return World{}, fmt.Errorf("num_machines %d%s needs the address of rank 0: give --main_process_ip, MASTER_ADDR or main_process_ip in the accelerate config",
			w.Nodes, from("num_machines"))
	}
	if port < 1 || port > 65535 {
		return World{}, fmt.Errorf("main_process_port %d%s is not a TCP port (1–65535)", port, from("main_process_port"))
	}
	w.Coordinator = net.JoinHostPort(ip, strconv.Itoa(port))
	return w, nil
}

func (s Launch) key(k string) string {
	if k == "" {
		return s.Source
	}
	return k
}

func envInt(getenv func(string) string, name string) (*int, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return nil, fmt.Errorf("%s=%q is not an integer", name, v)
	}
	return &n, nil
}

// FirstSlurmHost returns the first host of a Slurm host list in its compressed form:
// "node[07-09,12],gpu01" → "node07", "rack[1-2]-n[001-004]" → "rack1-n001".
func FirstSlurmHost(list string) (string, error) {
	var b strings.Builder
	depth := 0
	taken := false // the first element of the current bracket group is written
	for _, r := range list {
		switch {
		case r == '[':
			if depth > 0 {
				return "", fmt.Errorf("nested '[' in a host list")
			}
			depth, taken = 1, false
		case r == ']':
			if depth == 0 {
				return "", fmt.Errorf("unbalanced ']' in a host list")
			}
			depth = 0
		case depth > 0:
			if r == ',' || r == '-' {
				taken = true
			} else if !taken {
				b.WriteRune(r)
			}
		case r == ',':
			return finishHost(b.String())
		default:
			b.WriteRune(r)
		}
	}
	if depth > 0 {
		return "", fmt.Errorf("unclosed '[' in a host list")
	}
	return finishHost(b.String())
}

func finishHost(h string) (string, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return "", fmt.Errorf("empty host list")
	}
	return h, nil
}
