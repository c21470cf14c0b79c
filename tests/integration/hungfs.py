#!/usr/bin/python3
# A FUSE file system whose statfs does not answer until the file named by argv[2] exists: what a
# dead NFS server looks like to statfs(2). Mounted at argv[1] in the foreground; stat and
# readdir of its root answer at once.
import errno
import os
import stat
import sys
import time

import fusepy


class Hung(fusepy.Operations):
    def __init__(self, release):
        self.release = release

    def getattr(self, path, fh=None):
        if path != "/":
            raise fusepy.FuseOSError(errno.ENOENT)
        now = time.time()
        return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2, "st_ctime": now,
                "st_mtime": now, "st_atime": now}

    def readdir(self, path, fh):
        return [".", ".."]

    def statfs(self, path):
        while not os.path.exists(self.release):
            time.sleep(0.05)
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": 1000, "f_bfree": 500,
                "f_bavail": 400, "f_files": 100, "f_ffree": 50, "f_namemax": 255}


if __name__ == "__main__":
    fusepy.FUSE(Hung(sys.argv[2]), sys.argv[1], foreground=True, nothreads=False,
                fsname="hungfs")
