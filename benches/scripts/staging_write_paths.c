/* staging_write_paths.c: how fast can 768 MB of a new file enter the page cache?
 * (docs/benchmarks.md, "Apply vs full import, round 4", issue 23)
 *
 *   gcc -O2 -pthread staging_write_paths.c -o swp
 *   ./swp FILE THREADS MODE     MODE 0: write() in 32 MiB pieces (THREADS ignored)
 *                               MODE 1: fallocate, then each 32 MiB piece copied through
 *                                       a shared mapping, split across THREADS threads
 * Alternate the modes and remove FILE between runs: a page the guest freed recently is
 * cheaper to reuse than one it has not touched for a while. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include <pthread.h>
#include <time.h>
#define SZ (768UL<<20)
#define PIECE (32UL<<20)
static char *src; static int fd; static int nthreads;
static void *worker(void *arg){ long t=(long)arg;
  for (size_t off=0; off<SZ; off+=PIECE){
    size_t half=PIECE/nthreads, o=off+t*half;
    char *m=mmap(NULL,half,PROT_WRITE,MAP_SHARED,fd,o);
    if(m==MAP_FAILED){perror("mmap");exit(1);}
    memcpy(m,src+t*half,half); munmap(m,half);
  } return 0;}
int main(int argc,char**argv){ nthreads=atoi(argv[2]); int mode=atoi(argv[3]);
  src=malloc(PIECE); memset(src,'x',PIECE);
  fd=open(argv[1],O_RDWR|O_CREAT|O_TRUNC,0644);
  struct timespec a,b; clock_gettime(CLOCK_MONOTONIC,&a);
  if(mode==0){ for(size_t off=0;off<SZ;off+=PIECE) write(fd,src,PIECE); }
  else { if(fallocate(fd,0,0,SZ)){perror("fallocate");return 1;}
    pthread_t th[8]; for(long i=0;i<nthreads;i++) pthread_create(&th[i],0,worker,(void*)i);
    for(int i=0;i<nthreads;i++) pthread_join(th[i],0); }
  clock_gettime(CLOCK_MONOTONIC,&b);
  printf("%s threads=%d: %.2f s\n", mode?"mmap":"write", nthreads, (b.tv_sec-a.tv_sec)+(b.tv_nsec-a.tv_nsec)/1e9);
  close(fd); return 0; }
