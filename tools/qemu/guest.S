/* Tiny 32-bit multiboot guest for the real-QEMU COLO test (no paging).
 *
 * PIT at 100 Hz, `hlt` between ticks.  Every 10 ticks one "step" s writes:
 *   HOT   pc.ram 0x400000..0x407000 (8 pages), non-zero pattern
 *   SWEEP pc.ram 0x800000 + 0x1000*((2s+i) mod 256), i = 0, 1
 *   ZERO  pc.ram 0xC00000..0xC07000 (8 pages): zero while (s/16) is even
 *   VGA   "COLO step XXXXXXXX" at 0xB8000 (vga.vram page 0)
 * and toggles CR0.WP twice first (TCG flushes its TLB, see README Problem 2).
 * Every 10 steps it prints "step N" on COM1.  Code, data, IDT share the page
 * at 0x100000 (the tick counter dirties it); the stack lives in 0x2ff000.
 * Assemble: as --32 guest.S -o guest.o; ld -m elf_i386 -T linker.ld guest.o
 * (plain GNU as syntax, no preprocessor needed).
 */
    .code32
    .set MB_MAGIC, 0x1BADB002
    .set MB_FLAGS, 0x00000003

    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

    .text
    .globl _start
_start:
    cli
    lgdt gdt_desc
    ljmp $0x08, $1f
1:  mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    mov $0x300000, %esp
    /* IDT: every vector -> default_isr, 0x20 (IRQ0) -> timer_isr */
    mov $idt, %edi
    xor %ecx, %ecx
2:  mov $default_isr, %eax
    cmp $0x20, %ecx
    jne 3f
    mov $timer_isr, %eax
3:  mov %ax, (%edi)
    movw $0x08, 2(%edi)
    movw $0x8E00, 4(%edi)
    shr $16, %eax
    mov %ax, 6(%edi)
    add $8, %edi
    inc %ecx
    cmp $256, %ecx
    jne 2b
    lidt idt_desc
    /* 8259A: remap to 0x20/0x28, unmask IRQ0 only */
    mov $0x11, %al
    out %al, $0x20
    out %al, $0xA0
    mov $0x20, %al
    out %al, $0x21
    mov $0x28, %al
    out %al, $0xA1
    mov $0x04, %al
    out %al, $0x21
    mov $0x02, %al
    out %al, $0xA1
    mov $0x01, %al
    out %al, $0x21
    out %al, $0xA1
    mov $0xFE, %al
    out %al, $0x21
    mov $0xFF, %al
    out %al, $0xA1
    /* 8254 channel 0, mode 2, divisor 11932 = 100 Hz */
    mov $0x34, %al
    out %al, $0x43
    mov $0x9C, %al
    out %al, $0x40
    mov $0x2E, %al
    out %al, $0x40
    sti
main_loop:
    hlt
check:
    mov ticks, %eax
    xor %edx, %edx
    mov $10, %ecx
    div %ecx
    cmp steps, %eax
    jbe main_loop
    call do_step
    jmp check

do_step:
    pusha
    mov %cr0, %eax              /* two CR0.WP toggles: TCG flushes its TLB */
    xor $0x10000, %eax
    mov %eax, %cr0
    xor $0x10000, %eax
    mov %eax, %cr0
    mov steps, %ebx             /* s */
    lea 1(%ebx), %edx
    or $0x5A000000, %edx        /* non-zero pattern */
    mov $0x400000, %edi         /* HOT */
    mov $8, %ecx
1:  mov %edx, (%edi)
    add $0x1000, %edi
    loop 1b
    lea (%ebx,%ebx), %eax       /* SWEEP */
    and $255, %eax
    shl $12, %eax
    mov %edx, 0x800000(%eax)
    lea 1(%ebx,%ebx), %eax
    and $255, %eax
    shl $12, %eax
    mov %edx, 0x800000(%eax)
    xor %eax, %eax              /* ZERO: 0 while (s/16) even */
    test $16, %ebx
    jz 2f
    mov %edx, %eax
2:  mov $0xC00000, %edi
    mov $8, %ecx
3:  mov %eax, (%edi)
    add $0x1000, %edi
    loop 3b
    mov $0xB8000, %edi          /* VGA text */
    mov $vga_text, %esi
4:  lodsb
    test %al, %al
    jz 5f
    mov $0x07, %ah
    stosw
    jmp 4b
5:  mov $8, %ecx
    mov %ebx, %edx
6:  rol $4, %edx
    mov %edx, %eax
    and $15, %eax
    movb hexdigits(%eax), %al
    mov $0x07, %ah
    stosw
    loop 6b
    mov %ebx, %eax              /* "step N" every 10 steps */
    xor %edx, %edx
    mov $10, %ecx
    div %ecx
    test %edx, %edx
    jnz 9f
    mov $serial_text, %esi
7:  lodsb
    test %al, %al
    jz 8f
    call putc
    jmp 7b
8:  mov %ebx, %eax
    call putdec
    mov $10, %al
    call putc
9:  incl steps
    popa
    ret

putc:                           /* %al -> COM1 */
    push %edx
    push %eax
    mov $0x3FD, %dx
1:  in %dx, %al
    test $0x20, %al
    jz 1b
    pop %eax
    mov $0x3F8, %dx
    out %al, %dx
    pop %edx
    ret

putdec:                         /* %eax in decimal -> COM1 */
    push %ebx
    push %ecx
    push %edx
    mov $10, %ebx
    xor %ecx, %ecx
1:  xor %edx, %edx
    div %ebx
    push %edx
    inc %ecx
    test %eax, %eax
    jnz 1b
2:  pop %eax
    add $0x30, %al
    call putc
    loop 2b
    pop %edx
    pop %ecx
    pop %ebx
    ret

timer_isr:
    push %eax
    incl ticks
    mov $0x20, %al
    out %al, $0x20
    pop %eax
    iret

default_isr:
    push %eax
    mov $0x20, %al
    out %al, $0x20
    pop %eax
    iret

    .data
    .align 8
gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF
    .quad 0x00CF92000000FFFF
gdt_desc:
    .word 23
    .long gdt
idt_desc:
    .word 2047
    .long idt
ticks:
    .long 0
steps:
    .long 0
vga_text:
    .asciz "COLO step "
serial_text:
    .asciz "step "
hexdigits:
    .ascii "0123456789ABCDEF"

    .bss
    .align 8
idt:
    .space 2048
