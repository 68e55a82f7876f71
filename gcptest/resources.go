package gcptest

import (
	"fmt"
	"math/big"
	"path"
	"regexp"
	"strconv"
	"strings"

	"cloud.google.com/go/run/apiv2/runpb"
)

// Cloud Run jobs' CPU and memory limits (RULES.md, "Resources"). CPU is
// counted in thousandths of a vCPU, memory in bytes.
const (
	gpuLimitKey       = "nvidia.com/gpu"
	defaultCPUMilli   = 1000
	minCPUMilli       = 80
	defaultMemory     = 512 << 20
	minMemory         = 512 << 20
	maxMemory         = 32 << 30
	gib               = 1 << 30
	halfCPUMilli      = 500
	fractionalMaxMem  = 512 << 20
	halfCPUMaxMemory  = 1 << 30
	maxVolumeNameLen  = 63
	cloudSQLMountPath = "/cloudsql"
)

// wholeCPUMemory gives, for each whole number of vCPUs Cloud Run accepts,
// the least and the most memory it may have.
var wholeCPUMemory = map[int64][2]int64{
	1000: {minMemory, 4 * gib},
	2000: {minMemory, 8 * gib},
	4000: {2 * gib, 16 * gib},
	6000: {4 * gib, 24 * gib},
	8000: {4 * gib, 32 * gib},
}

// quantityRe is the Kubernetes quantity form Cloud Run reads limits in: a
// decimal number and an optional suffix.
var quantityRe = regexp.MustCompile(`^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$`)

var quantitySuffix = map[string]*big.Rat{
	"":   big.NewRat(1, 1),
	"m":  big.NewRat(1, 1000),
	"k":  big.NewRat(1000, 1),
	"M":  big.NewRat(1000*1000, 1),
	"G":  big.NewRat(1000*1000*1000, 1),
	"T":  big.NewRat(1000*1000*1000*1000, 1),
	"Ki": big.NewRat(1<<10, 1),
	"Mi": big.NewRat(1<<20, 1),
	"Gi": big.NewRat(1<<30, 1),
	"Ti": big.NewRat(1<<40, 1),
}

// parseQuantity reads a Kubernetes quantity ("1", "1000m", "0.5",
// "512Mi", "2G") as an exact number.
func parseQuantity(s string) (*big.Rat, bool) {
	m := quantityRe.FindStringSubmatch(s)
	if m == nil {
		return nil, false
	}
	num := m[1]
	if strings.HasSuffix(num, ".") {
		num += "0"
	}
	if strings.HasPrefix(num, ".") {
		num = "0" + num
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return nil, false
	}
	return r.Mul(r, quantitySuffix[m[2]]), true
}

// validateResources applies Cloud Run jobs' rules to a container's
// resources.limits: only cpu, memory and nvidia.com/gpu; a CPU of 0.08 to
// 1 in steps of 0.001, or 2, 4, 6 or 8; memory from 512 MiB to 32 GiB, in
// the range the CPU allows; a GPU count of 1.
func validateResources(field string, r *runpb.ResourceRequirements) error {
	_, _, err := containerResources(field, r, true)
	return err
}

// containerResources reads a container's CPU (in thousandths) and memory
// limits, defaults filled in. With alone, the container is the task's
// only one and the whole of Cloud Run's table applies to it; otherwise
// each value only needs its form, and validateTaskResources checks the
// task's totals.
func containerResources(field string, r *runpb.ResourceRequirements, alone bool) (cpu, mem int64, err error) {
	limits := r.GetLimits()
	for k := range limits {
		if k != "cpu" && k != "memory" && k != gpuLimitKey {
			return 0, 0, invalid("%s.limits: %q is not a supported resource: use cpu, memory or %s", field, k, gpuLimitKey)
		}
	}
	if v, ok := limits[gpuLimitKey]; ok && v != "1" {
		return 0, 0, invalid("%s.limits[%q] %q: the only supported value is 1", field, gpuLimitKey, v)
	}
	cpu = int64(defaultCPUMilli)
	if v, ok := limits["cpu"]; ok {
		q, ok := parseQuantity(v)
		milli := new(big.Rat)
		if ok {
			milli.Mul(q, big.NewRat(1000, 1))
		}
		if !ok || !milli.IsInt() || !milli.Num().IsInt64() {
			return 0, 0, invalid("%s.limits[\"cpu\"] %q is not a CPU amount such as 1, 2 or 500m in steps of 0.001", field, v)
		}
		cpu = milli.Num().Int64()
		if _, whole := wholeCPUMemory[cpu]; !whole && (cpu < minCPUMilli || cpu > defaultCPUMilli) {
			return 0, 0, invalid("%s.limits[\"cpu\"] %q: Cloud Run jobs take 0.08 to 1 vCPU, or 2, 4, 6 or 8", field, v)
		}
	}
	mem = int64(defaultMemory)
	if v, ok := limits["memory"]; ok {
		q, ok := parseQuantity(v)
		if !ok || !q.IsInt() || !q.Num().IsInt64() {
			return 0, 0, invalid("%s.limits[\"memory\"] %q is not an amount of memory such as 512Mi or 2Gi", field, v)
		}
		mem = q.Num().Int64()
		if alone && mem < minMemory || mem <= 0 || mem > maxMemory {
			return 0, 0, invalid("%s.limits[\"memory\"] %q: Cloud Run jobs take 512Mi to 32Gi", field, v)
		}
	}
	if !alone {
		return cpu, mem, nil
	}
	var lo, hi int64
	switch rng, whole := wholeCPUMemory[cpu]; {
	case whole:
		lo, hi = rng[0], rng[1]
	case cpu < halfCPUMilli:
		lo, hi = minMemory, fractionalMaxMem
	default:
		lo, hi = minMemory, halfCPUMaxMemory
	}
	if mem < lo || mem > hi {
		return 0, 0, invalid("%s.limits: %d bytes of memory with %s vCPU: that CPU takes %d to %d bytes", field, mem, big.NewRat(cpu, 1000).FloatString(3), lo, hi)
	}
	return cpu, mem, nil
}

// minCPUForMemory gives, from the most memory down, the least CPU (in
// thousandths) an instance with more than that much memory needs.
var minCPUForMemory = []struct{ above, cpu int64 }{
	{24 * gib, 8000}, {16 * gib, 6000}, {8 * gib, 4000}, {4 * gib, 2000},
}

// validateTaskResources applies the instance's limits to the containers
// of a task with more than one: their memory together from 512 MiB to
// 32 GiB, their CPU together at most 8, and at least the CPU the memory
// table asks of that much memory.
func validateTaskResources(field string, cs []*runpb.Container) error {
	var cpu, mem int64
	for i, c := range cs {
		cc, cm, err := containerResources(fmt.Sprintf("%s[%d].resources", field, i), c.GetResources(), false)
		if err != nil {
			return err
		}
		cpu, mem = cpu+cc, mem+cm
	}
	switch {
	case mem < minMemory || mem > maxMemory:
		return invalid("%s: the containers' memory limits total %d bytes; a task takes 512Mi to 32Gi", field, mem)
	case cpu > 8000:
		return invalid("%s: the containers' CPU limits total %s vCPU; a task takes at most 8", field, big.NewRat(cpu, 1000).FloatString(3))
	}
	for _, r := range minCPUForMemory {
		if mem > r.above && cpu < r.cpu {
			return invalid("%s: the containers' memory limits total %d bytes, which needs at least %d vCPU in all; they have %s", field, mem, r.cpu/1000, big.NewRat(cpu, 1000).FloatString(3))
		}
	}
	return nil
}

// usesGPU reports whether a container of the task asks for a GPU.
func usesGPU(cs []*runpb.Container) bool {
	for _, c := range cs {
		if _, ok := c.GetResources().GetLimits()[gpuLimitKey]; ok {
			return true
		}
	}
	return false
}

// validateVolumes checks a task template's volumes: each has a name, no
// two share one, and an in-memory or disk volume has a valid medium and
// size. It returns the volumes by name.
func validateVolumes(field string, vs []*runpb.Volume) (map[string]*runpb.Volume, error) {
	byName := map[string]*runpb.Volume{}
	for i, v := range vs {
		f := fmt.Sprintf("%s[%d]", field, i)
		if v.GetName() == "" {
			return nil, invalid("%s.name is required", f)
		}
		if len(v.Name) > maxVolumeNameLen || !rfc1123LabelRe.MatchString(v.Name) {
			return nil, invalid("%s.name %q must be a DNS label: at most 63 lowercase letters, digits and hyphens, starting and ending with a letter or digit", f, v.Name)
		}
		if _, dup := byName[v.Name]; dup {
			return nil, invalid("%s.name %q is used by another volume", f, v.Name)
		}
		byName[v.Name] = v
		if ed := v.GetEmptyDir(); ed != nil {
			if err := validateEmptyDir(f+".empty_dir", ed); err != nil {
				return nil, err
			}
		}
	}
	return byName, nil
}

// validateEmptyDir checks an in-memory (or disk) volume: a known medium,
// and a size_limit that is a positive whole number of bytes; a disk
// needs one.
func validateEmptyDir(field string, ed *runpb.EmptyDirVolumeSource) error {
	if _, ok := runpb.EmptyDirVolumeSource_Medium_name[int32(ed.GetMedium())]; !ok {
		return invalid("%s.medium %d is not MEMORY or DISK", field, ed.GetMedium())
	}
	if l := ed.GetSizeLimit(); l != "" {
		if _, ok := emptyDirSize(l); !ok {
			return invalid("%s.size_limit %q is not a positive amount of storage such as 64Mi or 1Gi", field, l)
		}
	} else if ed.GetMedium() == runpb.EmptyDirVolumeSource_DISK {
		return invalid("%s.size_limit is required for a DISK volume", field)
	}
	return nil
}

// emptyDirSize reads a size_limit as bytes.
func emptyDirSize(s string) (int64, bool) {
	q, ok := parseQuantity(s)
	if !ok || !q.IsInt() || !q.Num().IsInt64() || q.Sign() <= 0 {
		return 0, false
	}
	return q.Num().Int64(), true
}

// reservedMountDirs are the directories under which no volume mounts.
var reservedMountDirs = []string{"/dev", "/proc", "/sys"}

// validateVolumeMounts checks a container's volume mounts: each names a
// volume of the task, at an absolute path without ':', not at or under
// /dev, /proc or /sys, that no other mount of the container uses; a
// sub_path is relative and stays inside the volume. A Cloud SQL volume
// mounts at /cloudsql (or nowhere given, which means /cloudsql).
func validateVolumeMounts(field string, ms []*runpb.VolumeMount, volumes map[string]*runpb.Volume) error {
	paths := map[string]bool{}
	for i, m := range ms {
		f := field + "[" + strconv.Itoa(i) + "]"
		v, ok := volumes[m.GetName()]
		if !ok {
			return invalid("%s.name %q is not the name of a volume of the task", f, m.GetName())
		}
		cloudSQL := v.GetCloudSqlInstance() != nil
		p := m.GetMountPath()
		switch {
		case cloudSQL && p != "" && p != cloudSQLMountPath:
			return invalid("%s.mount_path %q: a Cloud SQL volume mounts at %s", f, p, cloudSQLMountPath)
		case cloudSQL && p == "":
			p = cloudSQLMountPath
		case p == "":
			return invalid("%s.mount_path is required", f)
		case strings.Contains(p, ":"):
			return invalid("%s.mount_path %q must not contain ':'", f, p)
		case !path.IsAbs(p):
			return invalid("%s.mount_path %q must be an absolute path", f, p)
		}
		clean := path.Clean(p)
		for _, d := range reservedMountDirs {
			if clean == d || strings.HasPrefix(clean, d+"/") {
				return invalid("%s.mount_path %q: Cloud Run does not allow mounting a volume at %s or under it", f, p, d)
			}
		}
		if clean == "/" {
			return invalid("%s.mount_path %q: a volume cannot replace the container's root", f, p)
		}
		if sp := m.GetSubPath(); sp != "" && (path.IsAbs(sp) || sp == ".." || strings.HasPrefix(path.Clean(sp), "../")) {
			return invalid("%s.sub_path %q must be a relative path inside the volume", f, sp)
		}
		if paths[clean] {
			return invalid("%s.mount_path %q is used by another mount of the container", f, p)
		}
		paths[clean] = true
	}
	return nil
}
