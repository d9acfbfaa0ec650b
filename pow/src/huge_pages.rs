//! Transparent huge pages for argon2's memory, where the kernel offers them.
//!
//! argon2 reads its reference blocks at pseudo-random places across all
//! `m` KiB. With 4 KiB pages, 64 MiB is 16 384 pages, far more than the
//! TLB holds, so most of those reads also walk the page tables; 2 MiB pages
//! make it 32. Measured on a Zen 3 machine, one verification with the
//! default parameters took about 30 % less time on huge pages. Most
//! distributions enable them only for memory that asks (`madvise` in
//! `/sys/kernel/mm/transparent_hugepage/enabled`), hence the request.
//!
//! It is a hint: where it is refused, or off, nothing changes but speed.

// madvise takes a raw address; the one call is below, with why it is sound.
#![allow(unsafe_code)]

/// Asks the kernel to back `region` with huge pages. Call it before the
/// region is first written, when the kernel chooses its pages.
#[cfg(target_os = "linux")]
pub(crate) fn advise<T>(region: &mut [T]) {
    let page = rustix::param::page_size();
    let start = region.as_mut_ptr() as usize;
    let end = start + core::mem::size_of_val(region);
    // madvise wants whole pages: only those entirely inside the region.
    let first = start.next_multiple_of(page);
    let len = end.saturating_sub(first) / page * page;
    if len == 0 {
        return;
    }
    // SAFETY: [first, first + len) lies inside `region`, which this function
    // borrows uniquely, so no other code relies on it meanwhile.
    // MADV_HUGEPAGE changes only how the kernel backs those pages, never
    // their contents or whether they are mapped.
    let advised = unsafe {
        rustix::mm::madvise(
            first as *mut core::ffi::c_void,
            len,
            rustix::mm::Advice::LinuxHugepage,
        )
    };
    // EINVAL where the kernel was built without huge pages: nothing to do.
    let _ = advised;
}

/// Elsewhere there is nothing to ask for.
#[cfg(not(target_os = "linux"))]
pub(crate) fn advise<T>(_region: &mut [T]) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The advice reaches the kernel: the mapping holding the region is
    /// flagged `hg` in /proc/self/smaps.
    ///
    /// Ignored by default rather than passing vacuously: whether it can
    /// check anything depends on the machine, not on the code. Run it with
    /// `cargo test -p powgate-pow --lib huge_pages -- --ignored` where
    /// transparent huge pages are on.
    #[test]
    #[ignore = "needs transparent huge pages (`always` or `madvise` in /sys/kernel/mm/transparent_hugepage/enabled)"]
    fn the_region_is_marked_for_huge_pages() {
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        assert!(
            !thp.is_empty() && !thp.contains("[never]"),
            "transparent huge pages are off here ({thp:?}): this test cannot check anything"
        );
        let mut v: Vec<u8> = Vec::with_capacity(16 << 20);
        advise(v.spare_capacity_mut());
        let addr = v.as_ptr() as usize + (8 << 20);
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
        let mut inside = false;
        let mut flagged = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((lo, hi)) = range.split_once('-')
                && let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = (lo..hi).contains(&addr);
            } else if inside && line.starts_with("VmFlags:") {
                flagged = line.split_whitespace().any(|f| f == "hg");
            }
        }
        assert!(flagged, "the mapping around the region is not marked hg");
    }
}
