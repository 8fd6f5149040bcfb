/*
 * ksm-workload: one process of the KSM benchmark's duplicate-memory workload.
 *
 *   ksm-workload SIZE_MIB DUP_FRACTION VOLATILE_FRACTION WAVE INDEX
 *
 * Maps SIZE_MIB of private anonymous memory, marks it MADV_MERGEABLE and fills it: the first
 * DUP_FRACTION of its pages hold content that depends only on (WAVE, page number), so every
 * process of a wave has them in common; the next VOLATILE_FRACTION of pages are rewritten every
 * 100 ms (they never merge); the rest is unique to (WAVE, INDEX). Prints "ready" when filled and
 * holds the memory until SIGTERM/SIGINT.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static uint64_t mix(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL; x ^= x >> 33;
    return x;
}

static void fill(uint64_t *page, size_t words, uint64_t seed) {
    for (size_t i = 0; i < words; i++) page[i] = mix(seed * 1315423911ULL + i + 1);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s SIZE_MIB DUP_FRACTION VOLATILE_FRACTION WAVE INDEX\n", argv[0]);
        return 2;
    }
    size_t mib = strtoul(argv[1], NULL, 10);
    double dup = atof(argv[2]), vol = atof(argv[3]);
    uint64_t wave = strtoull(argv[4], NULL, 10), index = strtoull(argv[5], NULL, 10);
    long page_size = sysconf(_SC_PAGESIZE);
    size_t bytes = mib << 20, pages = bytes / (size_t)page_size, words = (size_t)page_size / 8;
    size_t dup_pages = (size_t)(pages * dup), vol_pages = (size_t)(pages * vol);
    if (dup_pages + vol_pages > pages) vol_pages = pages - dup_pages;

    unsigned char *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) { perror("mmap"); return 1; }
    /* No huge pages: KSM splits them anyway, and the benchmark measures KSM, not THP. */
    madvise(mem, bytes, MADV_NOHUGEPAGE);
    if (madvise(mem, bytes, MADV_MERGEABLE) != 0) { perror("madvise(MADV_MERGEABLE)"); return 1; }
    for (size_t p = 0; p < pages; p++) {
        uint64_t *page = (uint64_t *)(mem + p * (size_t)page_size);
        if (p < dup_pages) fill(page, words, (wave << 40) ^ p);
        else fill(page, words, (wave << 40) ^ (index << 32) ^ p ^ 0x5a5a5a5aULL);
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    printf("ready\n");
    fflush(stdout);
    uint64_t tick = 0;
    struct timespec nap = {0, 100 * 1000 * 1000};
    while (!stop) {
        tick++;
        for (size_t p = dup_pages; p < dup_pages + vol_pages; p++) {
            uint64_t *page = (uint64_t *)(mem + p * (size_t)page_size);
            page[(tick + p) % words] = mix(tick ^ p);
        }
        nanosleep(&nap, NULL);
    }
    munmap(mem, bytes);
    return 0;
}
