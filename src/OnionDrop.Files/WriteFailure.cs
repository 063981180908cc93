namespace OnionDrop.Files;

/// <summary>
/// The two ways a write fails that the journalist can act on: the disk is full (ENOSPC), or the file is larger than
/// the file system takes in one file (EFBIG: FAT32's 4 GiB less a byte). .NET's IOException for a failed call carries
/// errno in its HResult; EFBIG alone it reports as an ArgumentOutOfRangeException, which <see cref="FileTooLarge"/>
/// turns back into the IOException it is.
/// </summary>
public static class WriteFailure
{
    public const int ENOSPC = 28, EFBIG = 27, EDQUOT = 122;

    /// <summary>ENOSPC, or EDQUOT (a quota is as full as a disk to whoever writes), possibly wrapped (by the catalog, say).</summary>
    public static bool IsDiskFull(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
            if (e is IOException && (e.HResult & 0xFFFF) is ENOSPC or EDQUOT) return true;
        return false;
    }

    public static bool IsFileTooLarge(Exception e) => e is IOException && (e.HResult & 0xFFFF) == EFBIG;

    /// <summary>A refusal for want of room, made before the disk itself says so: it reads as a full disk to <see cref="IsDiskFull"/>.</summary>
    public static IOException DiskFull(string message, Exception? cause = null) => new(message, cause) { HResult = ENOSPC };

    public static IOException FileTooLarge(string path) => new($"File too large : '{path}'", EFBIG);

}
