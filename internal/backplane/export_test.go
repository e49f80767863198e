package backplane

// Waiting returns how many resumers share the in-flight read of one page
// (0 when none runs).
func (r *HistoryReader) Waiting(s Stream, since string, page Page) int {
	page = page.withDefaults()
	if page.MaxBytes > r.budget {
		page.MaxBytes = r.budget
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.calls[readKey{s, since, page}]; c != nil {
		return c.refs
	}
	return 0
}
