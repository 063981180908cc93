using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using OnionDrop.Files;

namespace OnionDrop.Sealing;

/// <summary>What a sealed blob turned out to hold once opened and verified.</summary>
/// <param name="AlreadyOpened">the same submission (reference, time, message and every file's name and SHA-256, as its manifest.json records them) was already opened in <paramref name="Directory"/>: nothing new was written</param>
public sealed record OpenedSubmission(string Reference, DateTimeOffset ReceivedAt, string Message, IReadOnlyList<OpenedFile> Files, string Directory, bool AlreadyOpened = false);

public sealed record OpenedFile(string OriginalName, string SafeName, string ContentType, long Size, string Sha256Hex);

/// <summary>
/// A file opened, as the opener holds it until it is published: its name and type as the UTF-8 they came in, decoded
/// only when asked for. A submission may carry 64 MiB of names; as strings they took twice that, per blob.
/// </summary>
internal sealed record VerifiedFile(byte[] Name, byte[] ContentType, string SafeName, long Size, string Sha256Hex)
{
    public OpenedFile Decode() => new(Encoding.UTF8.GetString(Name), SafeName, Encoding.UTF8.GetString(ContentType), Size, Sha256Hex);
}

/// <summary>The files of an opened submission, each decoded when read.</summary>
internal sealed class OpenedFileList(IReadOnlyList<VerifiedFile> files) : IReadOnlyList<OpenedFile>
{
    public OpenedFile this[int index] => files[index].Decode();
    public int Count => files.Count;
    public IEnumerator<OpenedFile> GetEnumerator() => files.Select(f => f.Decode()).GetEnumerator();
    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>Refusal of a sealed blob, with a one-line reason fit for stderr.</summary>
/// <param name="damaged">its bytes are not the ones sealed (cut short, altered, added to): another copy may open</param>
public sealed class SealedFormatException(string reason, bool damaged = false) : Exception(reason)
{
    public bool Damaged { get; } = damaged;
}

/// <summary>
/// Opens sealed blobs on the journalist's machine: writes files and message under a fresh folder in the
/// output directory, to temporary names renamed only after the FINAL tag verifies; never overwrites,
/// never writes an unsafe name. On refusal nothing is left behind.
/// </summary>
public static class SubmissionOpener
{
    public const string MessageFileName = "message.txt";
    public const string ManifestFileName = "manifest.json";
    private const string WorkingPrefix = ".oniondrop-opening-";
    private const UnixFileMode PrivateDir = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode PrivateFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const int WriteBuffer = 64 * 1024;
    /// <summary>
    /// A file's first 8 MiB go through the page cache: the opener writes one file at a time, and sending every
    /// file direct made 1,000 files of 1 MiB open 1.3x slower (each direct write extending a file waits for
    /// its own size update).
    /// </summary>
    internal const long DirectFrom = 8L << 20;

    /// <summary>
    /// Names and types past which a submission is verified alone in this process: a valid one may carry 64 MiB of
    /// them, held until its manifest (the last record) is checked, and `oniondrop open` verifies a blob per core.
    /// The others wait their turn there, holding this much at most each. Ordinary submissions hold a few KB.
    /// </summary>
    internal const long HeavyNames = 8L << 20;
    private static readonly SemaphoreSlim HeavyTurn = new(1, 1);

    public static OpenedSubmission Open(Stream sealedBlob, JournalistKey key, string outputDirectory, string blobName) =>
        Open(sealedBlob, key, outputDirectory, blobName, progress: null);

    /// <param name="progress">receives the ciphertext bytes read so far, once per chunk</param>
    /// <exception cref="SealedFormatException">the blob is refused; nothing was left in <paramref name="outputDirectory"/></exception>
    public static OpenedSubmission Open(Stream sealedBlob, JournalistKey key, string outputDirectory, string blobName, IProgress<long>? progress)
    {
        using var verified = Verify(sealedBlob, key, outputDirectory, blobName, progress);
        return verified.Publish();
    }

    /// <summary>
    /// The first half of <see cref="Open(Stream, JournalistKey, string, string, IProgress{long}?)"/>: decrypts and
    /// verifies the whole blob into a hidden working folder in <paramref name="outputDirectory"/>, and stops there.
    /// <see cref="VerifiedSubmission.Publish"/> makes it durable and brings it into view; a caller with many blobs
    /// can publish one while it verifies the next.
    /// </summary>
    /// <exception cref="SealedFormatException">the blob is refused; nothing was left in <paramref name="outputDirectory"/></exception>
    public static VerifiedSubmission Verify(Stream sealedBlob, JournalistKey key, string outputDirectory, string blobName, IProgress<long>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(sealedBlob);
        ArgumentNullException.ThrowIfNull(key);
        Directory.CreateDirectory(outputDirectory, PrivateDir);
        if (Swept.TryAdd(Path.GetFullPath(outputDirectory), true)) SweepAbandonedWork(outputDirectory);

        // Everything goes into a hidden working folder first; it is renamed into view only once verified.
        // Its name carries our pid and where that pid means something (PidScope), so a later run can tell an
        // abandoned folder from one still being written.
        var working = Path.Combine(outputDirectory, $"{WorkingPrefix}{PidScope}-{Environment.ProcessId}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}");
        if (Path.Exists(working)) throw new IOException("working folder name collision: " + working);
        var heavy = false;
        try
        {
            Directory.CreateDirectory(working, PrivateDir);
            ReadManifest manifest;
            List<VerifiedFile> files;
            using (var plain = new SealedStreamReader(sealedBlob, key, progress))
                (manifest, files) = ReadRecords(plain, working, ref heavy);
            WriteSmallFile(Path.Combine(working, MessageFileName), manifest.Message);
            DescribeOpened(Path.Combine(working, ManifestFileName), manifest, files);

            var fallback = Path.GetFileNameWithoutExtension(blobName);
            var folderName = SafeFileName.Neutralise(manifest.Reference, SafeFileName.Neutralise(fallback, "submission"));
            return new VerifiedSubmission(working, outputDirectory, folderName, manifest, files);
        }
        catch (Exception e)
        {
            try { Directory.Delete(working, recursive: true); } catch (IOException) { }
            if (Explained(e, outputDirectory, sealedBlob.CanSeek ? sealedBlob.Length : null) is { } said) throw said;
            throw;
        }
        finally
        {
            if (heavy) HeavyTurn.Release();
        }
    }

    /// <summary>
    /// A full disk or a file too large for the file system, said so that the journalist knows where and what to do
    /// (.NET names the file in the hidden working folder, already deleted); null for any other failure.
    /// </summary>
    /// <param name="needs">about what the submission takes there (its sealed size), if known</param>
    internal static IOException? Explained(Exception e, string outputDirectory, long? needs)
    {
        const string NothingKept = "nothing of it was kept";
        if (e is FileTooLargeException tooLarge)
            return new IOException($"\"{tooLarge.FileName}\" is larger than a file in {outputDirectory} can be (File too large): {NothingKept}; open it into a folder " +
                                   "on another file system (FAT32, as many USB sticks are, takes at most 4 GiB - 1 byte a file)", WriteFailure.EFBIG);
        if (!WriteFailure.IsDiskFull(e)) return null;
        string free;
        try { free = ByteSize.Format(new DriveInfo(outputDirectory).AvailableFreeSpace) + " free"; }
        catch (Exception x) when (x is IOException or UnauthorizedAccessException) { free = "full"; }
        var need = needs is { } n ? $"; this submission needs about {ByteSize.Format(n)}" : "";
        return WriteFailure.DiskFull($"no space left in {outputDirectory} ({free}{need}): {NothingKept}; make room there or open it into another folder, then run open again");
    }

    /// <summary>EFBIG while writing one of the submission's files, with the file's name as the source gave it (made printable).</summary>
    private sealed class FileTooLargeException(string fileName) : IOException("File too large", WriteFailure.EFBIG)
    {
        public string FileName { get; } = fileName;
    }

    /// <summary>Output directories already swept by this process (once is enough: later leftovers are our own).</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> Swept = new();

    /// <summary>
    /// Where this process's pid can be looked up: this boot (boot_id, without its dashes) and this pid namespace (its
    /// inode): "&lt;32 hex&gt;-&lt;digits&gt;". Another machine, a reboot or another container has another. If either cannot be
    /// read, a random one: our folders then look like another machine's to every other run.
    /// </summary>
    private static readonly string PidScope = ReadPidScope();

    /// <summary>
    /// How long a working folder of another <see cref="PidScope"/> must be untouched before it counts as abandoned: far
    /// longer than any open takes, and enough for the clocks of two machines sharing a drive to disagree by hours.
    /// </summary>
    private static readonly TimeSpan ForeignIdleLimit = TimeSpan.FromDays(1);

    private static string ReadPidScope()
    {
        try
        {
            var boot = File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim().Replace("-", "");
            var ns = new FileInfo("/proc/self/ns/pid").LinkTarget ?? "";   // "pid:[4026531836]"
            var inode = ns.StartsWith("pid:[", StringComparison.Ordinal) && ns.EndsWith(']') ? ns[5..^1] : "";
            if (IsPidScope(boot, inode)) return $"{boot}-{inode}";
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)) + "-0";
    }

    private static bool IsPidScope(string boot, string pidNamespace) =>
        boot.Length == 32 && boot.All(char.IsAsciiHexDigitLower) && pidNamespace.Length > 0 && pidNamespace.All(char.IsAsciiDigit);

    /// <summary>
    /// Removes working folders left by an opener that was killed mid-way (they hold unverified plaintext): of this
    /// <see cref="PidScope"/>, those whose process is gone; of another (another machine's on a shared or removable
    /// drive, another boot's, another container's), those untouched for <see cref="ForeignIdleLimit"/>, since their
    /// pid cannot be looked up here. The old name, "&lt;pid&gt;-&lt;random&gt;", is judged by its pid as before. A folder of
    /// an unknown form is left alone.
    /// </summary>
    private static void SweepAbandonedWork(string outputDirectory)
    {
        foreach (var dir in Directory.EnumerateDirectories(outputDirectory, WorkingPrefix + "*"))
        {
            try { if (Abandoned(dir)) Directory.Delete(dir, recursive: true); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }   // another user's, on a shared drive: theirs to sweep
        }
    }

    private static bool Abandoned(string dir)
    {
        var parts = Path.GetFileName(dir)[WorkingPrefix.Length..].Split('-');
        if (parts is [var oldPid, _]) return int.TryParse(oldPid, out var pid) && !Directory.Exists($"/proc/{pid}");
        if (parts is not [var boot, var pidNamespace, var number, _] || !IsPidScope(boot, pidNamespace) || !int.TryParse(number, out var ownerPid))
            return false;
        return $"{boot}-{pidNamespace}" == PidScope
            ? !Directory.Exists($"/proc/{ownerPid}")
            : DateTime.UtcNow - LastTouched(dir) > ForeignIdleLimit;
    }

    /// <summary>The latest change in a working folder: a file being written moves its own time, not the folder's.</summary>
    private static DateTime LastTouched(string dir)
    {
        var latest = Directory.GetLastWriteTimeUtc(dir);
        foreach (var entry in new DirectoryInfo(dir).EnumerateFileSystemInfos("*", SearchOption.AllDirectories))
            if (entry.LastWriteTimeUtc > latest) latest = entry.LastWriteTimeUtc;
        return latest;
    }

    /// <summary>Parses the record framing (docs/sealed-format.md, "3. Plaintext: records"), writing each file as it streams.</summary>
    /// <param name="heavy">set once it has taken the <see cref="HeavyTurn"/>, which the caller gives back</param>
    private static (ReadManifest, List<VerifiedFile>) ReadRecords(SealedStreamReader plain, string working, ref bool heavy)
    {
        var files = new List<VerifiedFile>();
        var taken = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { MessageFileName, ManifestFileName };
        var nextNumber = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        long listedBytes = 0;   // names and types so far: the manifest must hold them all
        while (true)
        {
            var type = plain.ReadByte();
            if (type < 0) throw new SealedFormatException("malformed contents: the stream ends without a manifest");
            switch (type)
            {
                case SealedFormat.RecordFileStart:
                    // Checked before the manifest (the last record) can be: files and names are held until then,
                    // and each costs a file on disk, so a stream of empty files must not run on unbounded.
                    if (files.Count == SealedFormat.MaxFiles) throw new SealedFormatException($"malformed contents: more than {SealedFormat.MaxFiles} files");
                    var name = ReadUtf8(plain, SealedFormat.MaxNameBytes, "file name");
                    var contentType = ReadUtf8(plain, SealedFormat.MaxContentTypeBytes, "content type");
                    listedBytes += name.Length + contentType.Length;
                    if (listedBytes > SealedFormat.MaxManifestBytes)
                        throw new SealedFormatException($"malformed contents: the files' names and types exceed what a manifest can hold ({SealedFormat.MaxManifestBytes} bytes)");
                    if (listedBytes > HeavyNames && !heavy)
                    {
                        HeavyTurn.Wait();
                        heavy = true;
                    }
                    var safe = SafeFileName.Unique(SafeFileName.ForFile(name, $"file-{files.Count + 1}"), taken, nextNumber);
                    files.Add(ReadFile(plain, Path.Combine(working, safe), name, safe, contentType));
                    break;
                case SealedFormat.RecordManifest:
                    var manifest = ManifestReader.Read(plain, ReadLength(plain, SealedFormat.MaxManifestBytes, "manifest"), files);
                    // Read returns 0 only after FINAL verified with nothing after it.
                    if (!plain.ReadSpan(1).IsEmpty) throw new SealedFormatException("malformed contents: data after the manifest");
                    if (!manifest.Agrees) throw new SealedFormatException("malformed contents: the manifest disagrees with the files");
                    return (manifest, files);
                case SealedFormat.RecordFileData or SealedFormat.RecordFileEnd:
                    throw new SealedFormatException("malformed contents: file data outside a file");
                default:
                    throw new SealedFormatException($"malformed contents: unknown record type 0x{type:x2}");
            }
        }
    }

    /// <summary>
    /// Writes one file's data records to <paramref name="path"/>, hashing them, straight from the decrypted
    /// slots (a large file's tail past the page cache: <see cref="DirectFileWriter"/>). Not fsynced here:
    /// <see cref="VerifiedSubmission.Publish"/> does that.
    /// </summary>
    private static VerifiedFile ReadFile(SealedStreamReader plain, string path, byte[] name, string safe, byte[] contentType)
    {
        try { return WriteFile(plain, path, name, safe, contentType); }
        catch (IOException e) when (WriteFailure.IsFileTooLarge(e)) { throw new FileTooLargeException(SafeFileName.Neutralise(Encoding.UTF8.GetString(name))); }
    }

    private static VerifiedFile WriteFile(SealedStreamReader plain, string path, byte[] name, string safe, byte[] contentType)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long size;
        // Before DirectFileWriter's switch, writes of at least the buffer's size go straight to the file;
        // small records are gathered first.
        var file = new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = PrivateFile, BufferSize = WriteBuffer });
        try
        {
            using var output = new DirectFileWriter(file, DirectFrom, hash);
            while (true)
            {
                var type = plain.ReadByte();
                if (type == SealedFormat.RecordFileData)
                {
                    var remaining = ReadLength(plain, uint.MaxValue, "file data");
                    if (remaining == 0) throw new SealedFormatException("malformed contents: empty file data record");
                    while (remaining > 0)
                    {
                        var data = plain.ReadSpan((int)Math.Min(int.MaxValue, remaining));
                        if (data.IsEmpty) throw new SealedFormatException("malformed contents: the stream ends inside a file");
                        output.Write(data);   // and hashes it: past the switch on the writer's lane, off this thread
                        remaining -= data.Length;
                    }
                }
                else if (type == SealedFormat.RecordFileEnd) break;
                else throw new SealedFormatException(type < 0 ? "malformed contents: the stream ends inside a file" : "malformed contents: a file is not ended");
            }
            output.Flush();
            size = output.Length;
        }
        catch
        {
            // The file goes with its working folder. Closing it flushes what its buffer holds, and that failing too (the
            // disk still full) hid why it stopped: a damaged blob, a full disk, a file too large.
            try { file.Dispose(); }
            catch (Exception e) when (e is IOException or ArgumentOutOfRangeException) { }
            throw;
        }
        file.Dispose();   // output.Flush() left nothing in its buffer
        Span<byte> end = stackalloc byte[8 + 32];
        ReadExactly(plain, end);
        var sha = hash.GetHashAndReset();
        if (BinaryPrimitives.ReadUInt64LittleEndian(end) != (ulong)size || !end[8..].SequenceEqual(sha))
            throw new SealedFormatException($"file \"{SafeFileName.Neutralise(Encoding.UTF8.GetString(name))}\" does not match its recorded size and SHA-256");
        return new VerifiedFile(name, contentType, safe, size, Convert.ToHexStringLower(sha));
    }

    private static byte[] ReadUtf8(Stream plain, int max, string what)
    {
        var bytes = new byte[ReadLength(plain, (uint)max, what)];
        ReadExactly(plain, bytes);
        if (!System.Text.Unicode.Utf8.IsValid(bytes)) throw new SealedFormatException($"malformed contents: {what} is not UTF-8");
        return bytes;
    }

    private static long ReadLength(Stream plain, uint max, string what)
    {
        Span<byte> b = stackalloc byte[4];
        ReadExactly(plain, b);
        var n = BinaryPrimitives.ReadUInt32LittleEndian(b);
        if (n > max) throw new SealedFormatException($"malformed contents: {what} longer than {max} bytes");
        return n;
    }

    private static void ReadExactly(Stream plain, Span<byte> into)
    {
        if (plain.ReadAtLeast(into, into.Length, throwOnEndOfStream: false) < into.Length)
            throw new SealedFormatException("malformed contents: the stream ends inside a record");
    }

    private static void WriteSmallFile(string path, byte[] content)
    {
        using var file = new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = PrivateFile });
        file.Write(content);
    }

    /// <summary>
    /// The journalist's record of what was opened: original names beside the names written. It is also how a later
    /// open recognises the submission (<see cref="VerifiedSubmission"/>), so it holds the message's SHA-256: the
    /// message itself stays in message.txt alone, which a journalist may edit or shred. Written a file at a time:
    /// whole, it was as large as the manifest (64 MiB of names), and built as a string and as bytes, more.
    /// </summary>
    private static void DescribeOpened(string path, ReadManifest manifest, List<VerifiedFile> files)
    {
        using var file = new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = PrivateFile, BufferSize = WriteBuffer });
        var pending = new ArrayBufferWriter<byte>(1024);
        using var json = new Utf8JsonWriter(pending, DescriptionJson);
        void Out()
        {
            json.Flush();
            WriteEscapingInvisible(file, pending.WrittenSpan);
            pending.ResetWrittenCount();
        }
        json.WriteStartObject();
        json.WriteString("reference", manifest.Reference);
        json.WriteString("receivedAt", manifest.ReceivedAt);
        json.WriteString("message", MessageFileName);
        json.WriteString("messageSha256", Convert.ToHexStringLower(SHA256.HashData(manifest.Message)));
        json.WriteStartArray("files");
        foreach (var f in files)
        {
            json.WriteStartObject();
            json.WriteString("originalName", f.Name);
            json.WriteString("savedAs", f.SafeName);
            json.WriteString("contentType", f.ContentType);
            json.WriteNumber("size", f.Size);
            json.WriteString("sha256", f.Sha256Hex);
            json.WriteEndObject();
            Out();
        }
        json.WriteEndArray();
        json.WriteEndObject();
        Out();
    }

    /// <summary>
    /// The relaxed encoder keeps names readable (日本語 stays as it is) and escapes control characters, but not
    /// bidi overrides, zero-width or line-separator characters: `cat manifest.json` showed a source's
    /// "invoice\u202Efdp.exe" as "invoiceexe.pdf". Those become \uXXXX escapes, which can only be inside strings.
    /// </summary>
    private static void WriteEscapingInvisible(Stream file, ReadOnlySpan<byte> json)
    {
        Span<char> units = stackalloc char[2];
        Span<byte> escape = stackalloc byte[6];
        while (!json.IsEmpty)
        {
            var visible = 0;
            Rune rune = default;
            while (visible < json.Length)
            {
                Rune.DecodeFromUtf8(json[visible..], out rune, out var length);
                if (IsInvisible(rune)) break;
                visible += length;
            }
            file.Write(json[..visible]);
            json = json[visible..];
            if (json.IsEmpty) break;
            foreach (var unit in units[..rune.EncodeToUtf16(units)])
            {
                "\\u"u8.CopyTo(escape);
                ((int)unit).TryFormat(escape[2..], out _, "X4");
                file.Write(escape);
            }
            json = json[rune.Utf8SequenceLength..];
        }
    }

    private static bool IsInvisible(Rune rune) => SafeFileName.IsInvisible(Rune.GetUnicodeCategory(rune));

    private static readonly JsonWriterOptions DescriptionJson =
        new() { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>"NAME" for the first, then "NAME (2)", "NAME (3)"...</summary>
    internal static string NumberedName(string name, int i) => i == 1 ? name : SafeFileName.Shorten(name, SafeFileName.MaxBytes - 8) + $" ({i})";
}

/// <summary>
/// A blob opened and verified into its hidden working folder (<see cref="SubmissionOpener.Verify"/>): complete,
/// but neither durable nor in view until <see cref="Publish"/>. Disposed unpublished, the folder is deleted.
/// </summary>
public sealed class VerifiedSubmission : IDisposable
{
    private readonly string _working, _outputDirectory, _folderName;
    private ReadManifest _manifest;
    private List<VerifiedFile> _files;
    private bool _done;

    internal VerifiedSubmission(string working, string outputDirectory, string folderName, ReadManifest manifest, List<VerifiedFile> files) =>
        (_working, _outputDirectory, _folderName, _manifest, _files) = (working, outputDirectory, folderName, manifest, files);

    public IReadOnlyList<OpenedFile> Files => new OpenedFileList(_files);

    /// <summary>
    /// About how much memory it holds until published: its names, types and message (up to 64 MiB in a valid
    /// submission), a few hundred bytes a file beside. A caller keeping many waiting can bound them by this.
    /// </summary>
    public long HeldBytes =>
        _manifest.Message.Length + 2L * _manifest.Reference.Length + _files.Sum(f => f.Name.Length + f.ContentType.Length + 300L);

    /// <summary>
    /// fsyncs every file and the working folder, then renames the folder into view as its reference, never onto
    /// anything existing. (A caller with many blobs publishes several at once: their fsyncs share the file
    /// system's journal commits.) A crash
    /// therefore never shows a folder in view whose files did not all reach the disk. The rename itself is
    /// made durable by the caller's fsync of the output directory (once for many blobs).
    /// </summary>
    public OpenedSubmission Publish()
    {
        ObjectDisposedException.ThrowIf(_done, this);
        Manifest.TryParseTime(_manifest.ReceivedAt, out var receivedAt);
        // Looked for before the fsyncs too: re-opening an inbox then costs no disk flush per submission already there.
        if (IdenticalInView() is { } existing) return AlreadyOpened(existing, receivedAt);
        try
        {
            var paths = Directory.GetFiles(_working).Append(_working).ToArray();
            foreach (var p in paths) FileSync.Fsync(p);
            var (final, already) = ClaimInView();
            if (already) return AlreadyOpened(final, receivedAt);
            _done = true;
            return new OpenedSubmission(_manifest.Reference, receivedAt, Encoding.UTF8.GetString(_manifest.Message), Files, final);
        }
        catch (Exception e)
        {
            Dispose();
            if (SubmissionOpener.Explained(e, _outputDirectory, needs: null) is { } said) throw said;
            throw;
        }
    }

    /// <summary>
    /// Renames the working folder into view as "NAME", or "NAME (2)"..., never onto anything existing; unless one of
    /// those folders already holds this very submission: then that folder, and true. The rename is the claim (it
    /// fails on a folder there: an opened one is never empty), so a name taken meanwhile is looked at again, not
    /// passed over: another publisher of the same submission, in this process or in another `open` or `fetch --open`
    /// into the same folder, may have just put it there. Looking first and renaming after, two of them both found
    /// nothing and both renamed, the second as "NAME (2)"; a lock within the process did not see other processes.
    /// </summary>
    private (string Folder, bool Already) ClaimInView()
    {
        for (var i = 1; ;)
        {
            var candidate = Path.Combine(_outputDirectory, SubmissionOpener.NumberedName(_folderName, i));
            if (Path.Exists(candidate))
            {
                if (Directory.Exists(candidate) && Describes(candidate)) return (candidate, true);
                i++;
                continue;
            }
            try
            {
                Directory.Move(_working, candidate);
                return (candidate, false);
            }
            catch (IOException) when (Path.Exists(candidate)) { } // taken meanwhile: look at what took it
        }
    }

    private OpenedSubmission AlreadyOpened(string folder, DateTimeOffset receivedAt)
    {
        var opened = new OpenedSubmission(_manifest.Reference, receivedAt, Encoding.UTF8.GetString(_manifest.Message), Files, folder, AlreadyOpened: true);
        Dispose(); // opening an inbox twice makes no "(2)" copies of what is already there
        return opened;
    }

    /// <summary>
    /// The folder in view that already holds this very submission, recognised by the manifest.json its open wrote:
    /// same reference, time and message (its SHA-256), same files saved under the same names with the same SHA-256.
    /// What the folder holds now does not count: a journalist who annotated, renamed or deleted files there must not
    /// get a fresh copy at each re-open. A folder removed or renamed is not there, so it is opened again. Another blob
    /// claiming the same reference is not it, and is opened beside. Looked for where <see cref="ClaimInView"/>
    /// puts it: NAME, then "NAME (2)"... up to the first name not taken.
    /// </summary>
    private string? IdenticalInView()
    {
        for (var i = 1; ; i++)
        {
            var folder = Path.Combine(_outputDirectory, SubmissionOpener.NumberedName(_folderName, i));
            if (!Directory.Exists(folder)) return null; // the usual case at i = 1, without an exception thrown and caught per blob
            if (Describes(folder)) return folder;
        }
    }

    private bool Describes(string folder)
    {
        try
        {
            bool same, withoutMessageHash;
            using (var ours = File.OpenRead(Path.Combine(_working, SubmissionOpener.ManifestFileName)))
            using (var theirs = File.OpenRead(Path.Combine(folder, SubmissionOpener.ManifestFileName)))
                same = SameJson(ours, theirs, out withoutMessageHash);
            if (!same || !withoutMessageHash) return same;
            // Opened before manifest.json held the message's hash: then the message saved, compared as bytes
            // (read as text, a leading U+FEFF was dropped and the submission never recognised).
            var message = Path.Combine(folder, SubmissionOpener.MessageFileName);
            return new FileInfo(message).Length == _manifest.Message.Length && File.ReadAllBytes(message).AsSpan().SequenceEqual(_manifest.Message);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or InvalidOperationException)
        {
            return false; // not an opened submission (or not readable): open it beside
        }
    }

    /// <summary>
    /// Whether two manifest.json files say the same, read side by side a token at a time (strings compared as the text
    /// they escape, so one written before invisible characters were escaped still matches): parsed whole, the two took
    /// ten times the size of a manifest of long names. Their members come in the order open has always written them.
    /// A folder opened before the message's hash was written has none: <paramref name="withoutMessageHash"/>.
    /// </summary>
    private static bool SameJson(Stream ours, Stream theirs, out bool withoutMessageHash)
    {
        const string MessageHash = "messageSha256";
        withoutMessageHash = false;
        var (a, b) = (new JsonSource(ours, ours.Length), new JsonSource(theirs, theirs.Length));
        Utf8JsonReader x = JsonSource.Start(), y = JsonSource.Start();
        while (true)
        {
            var more = a.Read(ref x);
            if (more != b.Read(ref y)) return false;
            if (!more) return true;
            if (x.TokenType == JsonTokenType.PropertyName && y.TokenType == JsonTokenType.PropertyName && x.CurrentDepth == 1
                && x.ValueTextEquals(MessageHash) && !y.ValueTextEquals(MessageHash) && !withoutMessageHash)
            {
                withoutMessageHash = true;
                a.Read(ref x); // the hash
                a.Read(ref x); // the next member's name
            }
            if (x.TokenType != y.TokenType) return false;
            var same = x.TokenType switch
            {
                JsonTokenType.String or JsonTokenType.PropertyName => a.Utf8(ref x).SequenceEqual(b.Utf8(ref y)),
                JsonTokenType.Number => x.ValueSpan.SequenceEqual(y.ValueSpan),
                _ => true,
            };
            if (!same) return false;
        }
    }

    /// <summary>Deletes the working folder unless published, and lets go of the names and message held.</summary>
    public void Dispose()
    {
        // Up to 64 MiB: free once the caller lets go of what Publish returned, even if it keeps this a while.
        (_files, _manifest) = ([], _manifest with { Reference = "", Message = [] });
        if (_done) return;
        _done = true;
        try { Directory.Delete(_working, recursive: true); } catch (IOException) { }
    }
}
