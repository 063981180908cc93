namespace OnionDrop.Files;

/// <summary>
/// The two ways a write fails that the journalist can act on: the disk is full (ENOSPC), or the file is larger than
/// the file system takes in one file (EFBIG: FAT32's 4 GiB less a byte). .NET's IOException for a failed call carries
/// errno in its HResult; EFBIG alone it reports as an ArgumentOutOfRangeException, which <see cref="FileTooLarge"/>
/// turns back into the IOException it is.
/// </summary>
public static class WriteFailure
{
    public const int ENOSPC = 28, EFBIG = 27;

    public static bool IsDiskFull(Exception e) => e is IOException && (e.HResult & 0xFFFF) == ENOSPC;

    public static bool IsFileTooLarge(Exception e) => e is IOException && (e.HResult & 0xFFFF) == EFBIG;

    public static IOException FileTooLarge(string path) => new($"File too large : '{path}'", EFBIG);

    /// <summary>"3.0 MiB": sizes as a journalist reads them.</summary>
    public static string Size(long bytes) => bytes switch
    {
        < 1024 => $"{bytes} B",
        < 1024 * 1024 => $"{bytes / 1024.0:0.0} KiB",
        < 1024L * 1024 * 1024 => $"{bytes / 1048576.0:0.0} MiB",
        _ => $"{bytes / 1073741824.0:0.0} GiB",
    };
}
