/* kvmpc img: image tools (create, check, info). */
#ifndef KVMPC_BLOCK_IMG_H
#define KVMPC_BLOCK_IMG_H

/* argv[0] is "img". Returns the exit status: 0 ok, 1 errors found or bad
 * input (after printing usage or one line saying what is wrong). */
int img_main(int argc, char **argv);

#endif
