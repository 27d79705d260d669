package main

import (
	"io/fs"
	"testing"
)

func TestMemlimitFromContainer(t *testing.T) {
	t.Parallel()
	const mi = 1 << 20
	tests := []struct {
		name       string
		files      map[string]string
		env        map[string]string
		want       int64
		wantSource string
	}{
		{name: "cgroup v2 number", files: map[string]string{cgroupV2Max: "536870912\n"}, want: 512 * mi * 9 / 10, wantSource: cgroupV2Max},
		{name: "cgroup v2 max", files: map[string]string{cgroupV2Max: "max\n", cgroupV1Limit: "1048576\n"}, want: 0, wantSource: cgroupV2Max},
		{name: "cgroup v1 number", files: map[string]string{cgroupV1Limit: "268435456\n"}, want: 256 * mi * 9 / 10, wantSource: cgroupV1Limit},
		{name: "cgroup v1 huge", files: map[string]string{cgroupV1Limit: "9223372036854771712\n"}, want: 0, wantSource: cgroupV1Limit},
		{name: "cgroup v2 malformed", files: map[string]string{cgroupV2Max: "lots\n"}, want: 0, wantSource: cgroupV2Max},
		{name: "no cgroup files", want: 0, wantSource: ""},
		{name: "chart env", env: map[string]string{memoryLimitEnv: "536870912"}, files: map[string]string{cgroupV2Max: "1073741824"}, want: 512 * mi * 9 / 10, wantSource: memoryLimitEnv},
		{name: "chart env malformed falls back to cgroup", env: map[string]string{memoryLimitEnv: "512Mi"}, files: map[string]string{cgroupV2Max: "1073741824"}, want: 1024 * mi * 9 / 10, wantSource: cgroupV2Max},
		{name: "GOMEMLIMIT set: untouched", env: map[string]string{"GOMEMLIMIT": "300MiB", memoryLimitEnv: "536870912"}, files: map[string]string{cgroupV2Max: "536870912"}, want: 0, wantSource: "GOMEMLIMIT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			read := func(path string) ([]byte, error) {
				if s, ok := tt.files[path]; ok {
					return []byte(s), nil
				}
				return nil, fs.ErrNotExist
			}
			got, source := memoryLimit(read, func(k string) string { return tt.env[k] })
			if got != tt.want || source != tt.wantSource {
				t.Errorf("memoryLimit = %d, %q; want %d, %q", got, source, tt.want, tt.wantSource)
			}
		})
	}
}
