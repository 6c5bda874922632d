//go:build !linux

package objread

func adviseHuge([]byte) {}
