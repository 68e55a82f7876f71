package gcptest

import (
	"math/big"
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
	limits := r.GetLimits()
	for k := range limits {
		if k != "cpu" && k != "memory" && k != gpuLimitKey {
			return invalid("%s.limits: %q is not a supported resource: use cpu, memory or %s", field, k, gpuLimitKey)
		}
	}
	if v, ok := limits[gpuLimitKey]; ok && v != "1" {
		return invalid("%s.limits[%q] %q: the only supported value is 1", field, gpuLimitKey, v)
	}
	cpu := int64(defaultCPUMilli)
	if v, ok := limits["cpu"]; ok {
		q, ok := parseQuantity(v)
		milli := new(big.Rat)
		if ok {
			milli.Mul(q, big.NewRat(1000, 1))
		}
		if !ok || !milli.IsInt() || !milli.Num().IsInt64() {
			return invalid("%s.limits[\"cpu\"] %q is not a CPU amount such as 1, 2 or 500m in steps of 0.001", field, v)
		}
		cpu = milli.Num().Int64()
		if _, whole := wholeCPUMemory[cpu]; !whole && (cpu < minCPUMilli || cpu > defaultCPUMilli) {
			return invalid("%s.limits[\"cpu\"] %q: Cloud Run jobs take 0.08 to 1 vCPU, or 2, 4, 6 or 8", field, v)
		}
	}
	mem := int64(defaultMemory)
	if v, ok := limits["memory"]; ok {
		q, ok := parseQuantity(v)
		if !ok || !q.IsInt() || !q.Num().IsInt64() {
			return invalid("%s.limits[\"memory\"] %q is not an amount of memory such as 512Mi or 2Gi", field, v)
		}
		mem = q.Num().Int64()
		if mem < minMemory || mem > maxMemory {
			return invalid("%s.limits[\"memory\"] %q: Cloud Run jobs take 512Mi to 32Gi", field, v)
		}
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
		return invalid("%s.limits: %d bytes of memory with %s vCPU: that CPU takes %d to %d bytes", field, mem, big.NewRat(cpu, 1000).FloatString(3), lo, hi)
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
// two share one. It returns the names, and whether each is a Cloud SQL
// volume.
func validateVolumes(field string, vs []*runpb.Volume) (map[string]bool, error) {
	names := map[string]bool{}
	for i, v := range vs {
		if v.GetName() == "" {
			return nil, invalid("%s[%d].name is required", field, i)
		}
		if len(v.Name) > maxVolumeNameLen || !rfc1123LabelRe.MatchString(v.Name) {
			return nil, invalid("%s[%d].name %q must be a DNS label: at most 63 lowercase letters, digits and hyphens, starting and ending with a letter or digit", field, i, v.Name)
		}
		if _, dup := names[v.Name]; dup {
			return nil, invalid("%s[%d].name %q is used by another volume", field, i, v.Name)
		}
		names[v.Name] = v.GetCloudSqlInstance() != nil
	}
	return names, nil
}

// validateVolumeMounts checks a container's volume mounts: each names a
// volume of the task, at a path without ':' that no other mount of the
// container uses. A Cloud SQL volume mounts at /cloudsql (or nowhere
// given, which means /cloudsql).
func validateVolumeMounts(field string, ms []*runpb.VolumeMount, volumes map[string]bool) error {
	paths := map[string]bool{}
	for i, m := range ms {
		f := field + "[" + strconv.Itoa(i) + "]"
		cloudSQL, ok := volumes[m.GetName()]
		if !ok {
			return invalid("%s.name %q is not the name of a volume of the task", f, m.GetName())
		}
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
		}
		if paths[p] {
			return invalid("%s.mount_path %q is used by another mount of the container", f, p)
		}
		paths[p] = true
	}
	return nil
}
