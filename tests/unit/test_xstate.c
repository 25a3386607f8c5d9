/* XSAVE-area conversion: standard and compacted saves, restores with
 * init-state components, header checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "util.h"
#include "vm/xstate.h"

/* A layout like the host's: AVX, AVX-512 (opmask, ZMM_Hi256, Hi16_ZMM),
 * PKRU. */
static void fake_cpuid(void *opaque, uint32_t leaf, uint32_t sub,
                       uint32_t out[4])
{
    static const uint32_t comp[10][3] = {
        [2] = {256, 576, 0},  [5] = {64, 1088, 0},  [6] = {512, 1152, 0},
        [7] = {1024, 1664, 0}, [9] = {8, 2688, 0},
    };
    (void)opaque;
    memset(out, 0, 4 * sizeof(uint32_t));
    if (leaf != 0xD)
        return;
    if (sub == 0) {
        out[0] = 0x2E7;
        out[1] = out[2] = 2696;
    } else if (sub == 1) {
        out[0] = 0xF;
    } else if (sub < 10) {
        out[0] = comp[sub][0];
        out[1] = comp[sub][1];
        out[2] = comp[sub][2];
    }
}

#define KVM_LEN 4096
#define AREA_LEN 4096
static struct xstate_layout lay;
static uint8_t kvm[KVM_LEN], area[AREA_LEN];

/* A recognisable vCPU state: every component byte tagged. */
static void fill_kvm(uint64_t xstate_bv, uint32_t mxcsr)
{
    memset(kvm, 0, sizeof(kvm));
    for (unsigned i = 0; i < 160; i++)
        kvm[i] = (uint8_t)(0x80 + i);
    put_le32(kvm + 24, mxcsr);
    put_le32(kvm + 28, 0xFFFF);
    memset(kvm + 160, 0x11, 256);
    memset(kvm + 576, 0x22, 256);
    memset(kvm + 1088, 0x55, 64);
    memset(kvm + 1152, 0x66, 512);
    memset(kvm + 1664, 0x77, 1024);
    put_le32(kvm + 2688, 0x55555554);
    put_le64(kvm + 512, xstate_bv);
}

static int setup(void **state)
{
    xstate_layout_from_cpuid(&lay, fake_cpuid, NULL);
    memset(area, 0xEE, sizeof(area));
    return 0;
}

static void test_layout(void **state)
{
    assert_int_equal(lay.user_mask, 0x2E7);
    assert_int_equal(lay.supervisor_mask, 0);
    assert_int_equal(lay.offset[7], 1664);
    assert_int_equal(lay.size[7], 1024);
    assert_int_equal(lay.size[3], 0);
    assert_int_equal(xstate_area_size(&lay, false, 0x2E7), 2696);
    assert_int_equal(xstate_area_size(&lay, false, 0x3), 576);
    /* Compacted offsets as a 0xe7 guest kernel reports them. */
    assert_int_equal(xstate_compacted_offset(&lay, 0xE7, 2), 576);
    assert_int_equal(xstate_compacted_offset(&lay, 0xE7, 5), 832);
    assert_int_equal(xstate_compacted_offset(&lay, 0xE7, 6), 896);
    assert_int_equal(xstate_compacted_offset(&lay, 0xE7, 7), 1408);
    assert_int_equal(xstate_area_size(&lay, true, 0xE7), 2432);
    assert_int_equal(xstate_compacted_offset(&lay, 0x201, 9), 576);
}

static void test_compacted_alignment(void **state)
{
    struct xstate_layout l = lay;
    l.size[5] = 8;
    l.align64 = 1ull << 6;
    assert_int_equal(xstate_compacted_offset(&l, 0x67, 5), 832);
    assert_int_equal(xstate_compacted_offset(&l, 0x67, 6), 896);
    assert_int_equal(xstate_compacted_offset(&l, 0x47, 6), 832);
    assert_int_equal(xstate_area_size(&l, true, 0x67), 896 + 512);
}

static void test_save_standard(void **state)
{
    struct xstate_ranges w;
    fill_kvm(0x27, 0x1F80);
    put_le64(area + 512, 0x200); /* PKRU saved earlier, not requested now */
    assert_int_equal(xstate_save(&lay, kvm, KVM_LEN, false, true, 0x27, area,
                                 AREA_LEN, &w),
                     XSTATE_OK);
    assert_memory_equal(area, kvm, 416);
    assert_int_equal(area[416], 0xEE); /* 416..511 untouched */
    assert_int_equal(get_le64(area + 512), 0x227);
    assert_int_equal(area[520], 0xEE); /* XCOMP_BV untouched */
    assert_memory_equal(area + 576, kvm + 576, 256);
    assert_memory_equal(area + 1088, kvm + 1088, 64);
    assert_int_equal(area[1152], 0xEE); /* ZMM_Hi256 not requested */
    assert_int_equal(w.n, 4);
    assert_int_equal(w.r[0].off, 0);
    assert_int_equal(w.r[0].len, 416);
    assert_int_equal(w.r[1].off, 512);
    assert_int_equal(w.r[1].len, 8);
    assert_int_equal(w.r[2].off, 576);
    assert_int_equal(w.r[2].len, 256);
    assert_int_equal(w.r[3].off, 1088);
}

static void test_save_standard_not_in_use(void **state)
{
    struct xstate_ranges w;
    /* AVX requested but not in use: stored anyway (init values from the
     * image), XSTATE_BV says not in use. RFBM[2] alone stores MXCSR but
     * not the XMM registers. */
    fill_kvm(0x3, 0x1F80);
    memset(kvm + 576, 0, 256);
    assert_int_equal(xstate_save(&lay, kvm, KVM_LEN, false, true, 0x5, area,
                                 AREA_LEN, &w),
                     XSTATE_OK);
    assert_int_equal(get_le64(area + 512) & 0x5, 0x1);
    assert_int_equal(area[576], 0);
    assert_memory_equal(area + 24, kvm + 24, 8);
    assert_int_equal(area[160], 0xEE);
    /* Without SSE and AVX in RFBM, MXCSR is left alone. */
    memset(area, 0xEE, sizeof(area));
    assert_int_equal(xstate_save(&lay, kvm, KVM_LEN, false, true, 0x1, area,
                                 AREA_LEN, &w),
                     XSTATE_OK);
    assert_int_equal(area[24], 0xEE);
    assert_int_equal(area[0], kvm[0]);
}

static void test_save_32bit_pointers(void **state)
{
    struct xstate_ranges w;
    fill_kvm(0x3, 0x1F80);
    assert_int_equal(xstate_save(&lay, kvm, KVM_LEN, false, false, 0x1, area,
                                 AREA_LEN, &w),
                     XSTATE_OK);
    assert_memory_equal(area + 8, kvm + 8, 4);   /* FIP[31:0] */
    assert_memory_equal(area + 12, "\0\0\0\0", 4); /* FCS, reserved */
    assert_memory_equal(area + 16, kvm + 16, 4); /* FDP[31:0] */
    assert_memory_equal(area + 20, "\0\0\0\0", 4);
    /* Restoring the 32-bit form zero-extends the pointers. */
    fill_kvm(0x3, 0x1F80);
    memcpy(area + 512, "\x01\0\0\0\0\0\0\0", 8);
    memset(area + 520, 0, 56);
    assert_int_equal(xstate_restore(&lay, kvm, KVM_LEN, area, AREA_LEN, false,
                                    0x1),
                     XSTATE_OK);
    assert_int_equal(get_le64(kvm + 8), get_le32(area + 8));
    assert_int_equal(get_le64(kvm + 16), get_le32(area + 16));
}

static void test_save_compacted(void **state)
{
    struct xstate_ranges w;
    fill_kvm(0x25, 0x1F80);
    assert_int_equal(xstate_save(&lay, kvm, KVM_LEN, true, true, 0xE7, area,
                                 AREA_LEN, &w),
                     XSTATE_OK);
    assert_int_equal(get_le64(area + 512), 0x25);
    assert_int_equal(get_le64(area + 520), 0x80000000000000E7ull);
    assert_int_equal(area[528], 0xEE);
    assert_memory_equal(area, kvm, 24);
    assert_int_equal(area[24], 0xEE); /* SSE not in use, MXCSR initial */
    assert_int_equal(area[160], 0xEE);
    assert_memory_equal(area + 576, kvm + 576, 256);
    assert_memory_equal(area + 832, kvm + 1088, 64);
    assert_int_equal(area[896], 0xEE); /* not in use: not stored */
    /* A non-initial MXCSR makes SSE count as in use. */
    memset(area, 0xEE, sizeof(area));
    fill_kvm(0x25, 0x1F00);
    assert_int_equal(xstate_save(&lay, kvm, KVM_LEN, true, true, 0xE7, area,
                                 AREA_LEN, &w),
                     XSTATE_OK);
    assert_int_equal(get_le64(area + 512), 0x27);
    assert_int_equal(get_le32(area + 24), 0x1F00);
    assert_memory_equal(area + 160, kvm + 160, 256);
}

static void put_header(uint64_t xstate_bv, uint64_t xcomp_bv)
{
    memset(area + 512, 0, 64);
    put_le64(area + 512, xstate_bv);
    put_le64(area + 520, xcomp_bv);
}

static void test_restore_standard_with_init(void **state)
{
    struct xstate_ranges rd;
    fill_kvm(0x2E7, 0x1F80);
    memset(area, 0x44, sizeof(area));
    put_le32(area + 24, 0x1F81);
    put_header(0x205, 0); /* x87, AVX, PKRU from memory; the rest init */
    assert_int_equal(xstate_restore_plan(&lay, area + 512, 0x2E7, 0x2E7, false,
                                         &rd),
                     XSTATE_OK);
    assert_int_equal(xstate_restore(&lay, kvm, KVM_LEN, area, AREA_LEN, true,
                                    0x2E7),
                     XSTATE_OK);
    assert_memory_equal(kvm, area, 24);
    assert_int_equal(get_le32(kvm + 24), 0x1F81); /* MXCSR from memory */
    for (unsigned i = 160; i < 416; i++)
        assert_int_equal(kvm[i], 0); /* XMM initialised */
    assert_int_equal(kvm[576], 0x44);
    for (unsigned i = 1088; i < 2688; i++)
        assert_int_equal(kvm[i], 0); /* AVX-512 initialised */
    assert_int_equal(get_le32(kvm + 2688), 0x44444444);
    /* x87, AVX, PKRU in use; SSE too since MXCSR is not initial. */
    assert_int_equal(get_le64(kvm + 512), 0x207);
    /* The read plan: x87+MXCSR+ST regs, header+AVX, PKRU. */
    assert_int_equal(rd.n, 3);
    assert_int_equal(rd.r[0].off, 0);
    assert_int_equal(rd.r[0].len, 160);
    assert_int_equal(rd.r[1].off, 512);
    assert_int_equal(rd.r[1].len, 64 + 256);
    assert_int_equal(rd.r[2].off, 2688);
    assert_int_equal(rd.r[2].len, 8);
}

static void test_restore_x87_init(void **state)
{
    fill_kvm(0x3, 0x1F80);
    put_header(0x2, 0);
    put_le32(area + 24, 0x1F80);
    assert_int_equal(xstate_restore(&lay, kvm, KVM_LEN, area, AREA_LEN, true,
                                    0x3),
                     XSTATE_OK);
    assert_int_equal(get_le16(kvm), 0x037F); /* FCW */
    assert_int_equal(get_le16(kvm + 2), 0);  /* FSW */
    assert_int_equal(kvm[4], 0);             /* FTW: all empty */
    for (unsigned i = 32; i < 160; i++)
        assert_int_equal(kvm[i], 0);
    assert_int_equal(get_le64(kvm + 512), 0x2);
    /* Components outside RFBM keep their state and in-use bit. */
    fill_kvm(0x27, 0x1F80);
    put_header(0x0, 0);
    assert_int_equal(xstate_restore(&lay, kvm, KVM_LEN, area, AREA_LEN, true,
                                    0x1),
                     XSTATE_OK);
    assert_int_equal(get_le64(kvm + 512), 0x26);
    assert_int_equal(kvm[576], 0x22);
}

static void test_compacted_round_trip(void **state)
{
    static uint8_t saved[KVM_LEN];
    struct xstate_ranges w, rd;
    fill_kvm(0x2E7, 0x1F00);
    memcpy(saved, kvm, sizeof(saved));
    assert_int_equal(xstate_save(&lay, kvm, KVM_LEN, true, true, 0x2E7, area,
                                 AREA_LEN, &w),
                     XSTATE_OK);
    assert_int_equal(get_le64(area + 520), 0x80000000000002E7ull);
    memset(area + 528, 0, 48); /* the guest's area starts zeroed */
    memset(kvm, 0x99, sizeof(kvm));
    put_le64(kvm + 512, 0);
    put_le32(kvm + 28, 0xFFFF);
    assert_int_equal(xstate_restore_plan(&lay, area + 512, 0x2E7, 0x2E7, true,
                                         &rd),
                     XSTATE_OK);
    assert_int_equal(xstate_restore(&lay, kvm, KVM_LEN, area, AREA_LEN, true,
                                    0x2E7),
                     XSTATE_OK);
    assert_memory_equal(kvm, saved, 416);
    assert_memory_equal(kvm + 512, saved + 512, 8);
    assert_memory_equal(kvm + 576, saved + 576, 256);
    assert_memory_equal(kvm + 1088, saved + 1088, 2696 - 1088);
}

static void test_restore_compacted_partial(void **state)
{
    /* An area holding only AVX (XCOMP_BV = x87|SSE|AVX) restored with a
     * wider RFBM: the AVX-512 components go to their initial state. */
    fill_kvm(0x2E7, 0x1F80);
    memset(area, 0x33, 1024);
    put_le32(area + 24, 0x1F80);
    put_header(0x4, 0x8000000000000007ull);
    assert_int_equal(xstate_restore(&lay, kvm, KVM_LEN, area, AREA_LEN, true,
                                    0x2E7),
                     XSTATE_OK);
    assert_int_equal(kvm[576], 0x33);
    assert_int_equal(kvm[1088], 0);
    assert_int_equal(get_le32(kvm + 2688), 0);
    assert_int_equal(get_le32(kvm + 24), 0x1F80); /* SSE init: MXCSR too */
    assert_int_equal(get_le16(kvm), 0x037F);
    assert_int_equal(get_le64(kvm + 512), 0x4);
}

static void test_header_checks(void **state)
{
    struct xstate_ranges rd;
    uint8_t *h = area + 512;
    put_header(0x7, 0);
    assert_int_equal(xstate_restore_plan(&lay, h, 0x7, 0x7, false, &rd),
                     XSTATE_OK);
    put_header(0x27, 0); /* XSTATE_BV beyond XCR0 */
    assert_int_equal(xstate_restore_plan(&lay, h, 0x7, 0x7, false, &rd),
                     XSTATE_GP);
    put_header(0x7, 0x7); /* XCOMP_BV set in the standard form */
    assert_int_equal(xstate_restore_plan(&lay, h, 0x7, 0x7, false, &rd),
                     XSTATE_GP);
    put_header(0x7, 0);
    h[16] = 1; /* bytes 23:16 must be zero */
    assert_int_equal(xstate_restore_plan(&lay, h, 0x7, 0x7, false, &rd),
                     XSTATE_GP);
    put_header(0x7, 0);
    h[24] = 1; /* beyond byte 23 the standard form does not care */
    assert_int_equal(xstate_restore_plan(&lay, h, 0x7, 0x7, false, &rd),
                     XSTATE_OK);
    assert_int_equal(xstate_restore_plan(&lay, h, 0x7, 0x7, true, &rd),
                     XSTATE_GP); /* XRSTORS needs the compacted form */
    put_header(0x7, 0x8000000000000027ull); /* XCOMP_BV beyond XCR0 */
    assert_int_equal(xstate_restore_plan(&lay, h, 0x7, 0x7, false, &rd),
                     XSTATE_GP);
    put_header(0x27, 0x8000000000000007ull); /* XSTATE_BV not in XCOMP_BV */
    assert_int_equal(xstate_restore_plan(&lay, h, 0x27, 0x27, false, &rd),
                     XSTATE_GP);
    put_header(0x7, 0x8000000000000007ull);
    h[40] = 1; /* compacted: bytes 63:16 must be zero */
    assert_int_equal(xstate_restore_plan(&lay, h, 0x7, 0x7, false, &rd),
                     XSTATE_GP);
    put_header(0x8000000000000007ull, 0x8000000000000007ull);
    assert_int_equal(xstate_restore_plan(&lay, h, 0x7, 0x7, false, &rd),
                     XSTATE_GP);
}

static void test_mxcsr_reserved_bits(void **state)
{
    static uint8_t before[KVM_LEN];
    fill_kvm(0x3, 0x1F80);
    memcpy(before, kvm, sizeof(before));
    put_header(0x3, 0);
    put_le32(area + 24, 0x10000); /* bit 16 is reserved */
    assert_int_equal(xstate_restore(&lay, kvm, KVM_LEN, area, AREA_LEN, true,
                                    0x3),
                     XSTATE_GP);
    assert_memory_equal(kvm, before, sizeof(before));
}

static void test_missing_components(void **state)
{
    struct xstate_ranges w;
    fill_kvm(0x7, 0x1F80);
    /* The KVM image is too short for ZMM_Hi256. */
    assert_int_equal(xstate_save(&lay, kvm, 1152, false, true, 0x47, area,
                                 AREA_LEN, &w),
                     XSTATE_UNSUPPORTED);
    /* A component the layout does not know. */
    assert_int_equal(xstate_save(&lay, kvm, KVM_LEN, false, true, 0x9, area,
                                 AREA_LEN, &w),
                     XSTATE_UNSUPPORTED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_layout, setup),
        cmocka_unit_test_setup(test_compacted_alignment, setup),
        cmocka_unit_test_setup(test_save_standard, setup),
        cmocka_unit_test_setup(test_save_standard_not_in_use, setup),
        cmocka_unit_test_setup(test_save_32bit_pointers, setup),
        cmocka_unit_test_setup(test_save_compacted, setup),
        cmocka_unit_test_setup(test_restore_standard_with_init, setup),
        cmocka_unit_test_setup(test_restore_x87_init, setup),
        cmocka_unit_test_setup(test_compacted_round_trip, setup),
        cmocka_unit_test_setup(test_restore_compacted_partial, setup),
        cmocka_unit_test_setup(test_header_checks, setup),
        cmocka_unit_test_setup(test_mxcsr_reserved_bits, setup),
        cmocka_unit_test_setup(test_missing_components, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
