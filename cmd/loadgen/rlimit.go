package main

import (
	"fmt"
	"syscall"
)

// raiseNoFile lifts RLIMIT_NOFILE so that need descriptors fit: the soft
// limit up to the hard one, and the hard one too when the process may
// (root or CAP_SYS_RESOURCE). It returns the limit in force and a warning
// when that is below need.
func raiseNoFile(need uint64) (uint64, string) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Sprintf("cannot read RLIMIT_NOFILE: %v", err)
	}
	if lim.Cur >= need {
		return lim.Cur, ""
	}
	if lim.Max < need {
		want := syscall.Rlimit{Cur: need, Max: need}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
			return need, ""
		}
	}
	lim.Cur = min(need, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Sprintf("cannot raise RLIMIT_NOFILE: %v", err)
	}
	if lim.Cur < need {
		return lim.Cur, fmt.Sprintf("the OS limits this process to %d open files (hard RLIMIT_NOFILE) but %d are needed: "+
			"connections beyond that will fail with EMFILE; raise it (ulimit -Hn, or run as root, or LimitNOFILE= in systemd)", lim.Cur, need)
	}
	return lim.Cur, ""
}
