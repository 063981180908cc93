using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace OnionDrop.Sealing;

/// <summary>What a sealed blob turned out to hold once opened and verified.</summary>
public sealed record OpenedSubmission(string Reference, DateTimeOffset ReceivedAt, string Message, IReadOnlyList<OpenedFile> Files, string Directory);

public sealed record OpenedFile(string OriginalName, string SafeName, string ContentType, long Size, string Sha256Hex);

/// <summary>Refusal of a sealed blob, with a one-line reason fit for stderr.</summary>
public sealed class SealedFormatException(string reason) : Exception(reason);

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

    public static OpenedSubmission Open(Stream sealedBlob, JournalistKey key, string outputDirectory, string blobName) =>
        Open(sealedBlob, key, outputDirectory, blobName, progress: null);

    /// <param name="progress">receives the ciphertext bytes read so far, once per chunk</param>
    /// <exception cref="SealedFormatException">the blob is refused; nothing was left in <paramref name="outputDirectory"/></exception>
    public static OpenedSubmission Open(Stream sealedBlob, JournalistKey key, string outputDirectory, string blobName, IProgress<long>? progress)
    {
        ArgumentNullException.ThrowIfNull(sealedBlob);
        ArgumentNullException.ThrowIfNull(key);
        Directory.CreateDirectory(outputDirectory, PrivateDir);
        SweepAbandonedWork(outputDirectory);

        // Everything goes into a hidden working folder first; it is renamed into view only once verified.
        // Its name carries our pid, so a later run can tell an abandoned folder from one still being written.
        var working = Path.Combine(outputDirectory, $"{WorkingPrefix}{Environment.ProcessId}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}");
        if (Path.Exists(working)) throw new IOException("working folder name collision: " + working);
        Directory.CreateDirectory(working, PrivateDir);
        try
        {
            using var plain = new SealedStreamReader(sealedBlob, key, progress);
            var (manifest, files) = ReadRecords(plain, working);
            var message = manifest.Message;
            WriteSmallFile(Path.Combine(working, MessageFileName), Encoding.UTF8.GetBytes(message));
            WriteSmallFile(Path.Combine(working, ManifestFileName), DescribeOpened(manifest, files));

            var fallback = Path.GetFileNameWithoutExtension(blobName);
            var folderName = SafeFileName.Neutralise(manifest.Reference, SafeFileName.Neutralise(fallback, "submission"));
            var final = MoveIntoView(working, outputDirectory, folderName);
            Manifest.TryParseTime(manifest.ReceivedAt, out var receivedAt);
            return new OpenedSubmission(manifest.Reference, receivedAt, message, files, final);
        }
        catch
        {
            try { Directory.Delete(working, recursive: true); } catch (IOException) { }
            throw;
        }
    }

    /// <summary>
    /// Removes working folders left by an opener that was killed mid-way (they hold unverified plaintext):
    /// those whose process is gone. A folder of a live process, or of an unknown form, is left alone.
    /// </summary>
    private static void SweepAbandonedWork(string outputDirectory)
    {
        foreach (var dir in Directory.EnumerateDirectories(outputDirectory, WorkingPrefix + "*"))
        {
            var rest = Path.GetFileName(dir)[WorkingPrefix.Length..];
            var dash = rest.IndexOf('-');
            if (dash <= 0 || !int.TryParse(rest[..dash], out var pid) || Directory.Exists($"/proc/{pid}")) continue;
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>Parses the record framing (docs/sealed-format.md, "Plaintext records"), writing each file as it streams.</summary>
    private static (Manifest, List<OpenedFile>) ReadRecords(Stream plain, string working)
    {
        var files = new List<OpenedFile>();
        var taken = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { MessageFileName, ManifestFileName };
        var buffer = ArrayPool<byte>.Shared.Rent(SealedFormat.ChunkSize);
        Span<byte> fixedPart = stackalloc byte[8 + 32];
        try
        {
            while (true)
            {
                var type = plain.ReadByte();
                if (type < 0) throw new SealedFormatException("malformed contents: the stream ends without a manifest");
                switch (type)
                {
                    case SealedFormat.RecordFileStart:
                        var name = ReadText(plain, SealedFormat.MaxNameBytes, "file name");
                        var contentType = ReadText(plain, SealedFormat.MaxContentTypeBytes, "content type");
                        var safe = SafeFileName.Unique(SafeFileName.Neutralise(name, $"file-{files.Count + 1}"), taken);
                        files.Add(ReadFile(plain, Path.Combine(working, safe), name, safe, contentType, buffer));
                        break;
                    case SealedFormat.RecordManifest:
                        var json = ReadLengthPrefixed(plain, SealedFormat.MaxManifestBytes, "manifest");
                        var manifest = Manifest.Parse(json);
                        // Read returns 0 only after FINAL verified with nothing after it.
                        if (plain.Read(fixedPart[..1]) != 0) throw new SealedFormatException("malformed contents: data after the manifest");
                        CheckAgrees(manifest, files);
                        return (manifest, files);
                    case SealedFormat.RecordFileData or SealedFormat.RecordFileEnd:
                        throw new SealedFormatException("malformed contents: file data outside a file");
                    default:
                        throw new SealedFormatException($"malformed contents: unknown record type 0x{type:x2}");
                }
            }
        }
        finally { ArrayPool<byte>.Shared.Return(buffer, clearArray: true); }
    }

    private static OpenedFile ReadFile(Stream plain, string path, string name, string safe, string contentType, byte[] buffer)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long size = 0;
        using (var file = new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = PrivateFile }))
        {
            while (true)
            {
                var type = plain.ReadByte();
                if (type == SealedFormat.RecordFileData)
                {
                    var remaining = ReadLength(plain, uint.MaxValue, "file data");
                    if (remaining == 0) throw new SealedFormatException("malformed contents: empty file data record");
                    while (remaining > 0)
                    {
                        var n = plain.Read(buffer, 0, (int)Math.Min(buffer.Length, remaining));
                        if (n == 0) throw new SealedFormatException("malformed contents: the stream ends inside a file");
                        hash.AppendData(buffer, 0, n);
                        file.Write(buffer, 0, n);
                        remaining -= n;
                        size += n;
                    }
                }
                else if (type == SealedFormat.RecordFileEnd) break;
                else throw new SealedFormatException(type < 0 ? "malformed contents: the stream ends inside a file" : "malformed contents: a file is not ended");
            }
            file.Flush(flushToDisk: true);
        }
        Span<byte> end = stackalloc byte[8 + 32];
        ReadExactly(plain, end);
        var sha = hash.GetHashAndReset();
        if (BinaryPrimitives.ReadUInt64LittleEndian(end) != (ulong)size || !end[8..].SequenceEqual(sha))
            throw new SealedFormatException($"file \"{SafeFileName.Neutralise(name)}\" does not match its recorded size and SHA-256");
        return new OpenedFile(name, safe, contentType, size, Convert.ToHexStringLower(sha));
    }

    private static void CheckAgrees(Manifest manifest, List<OpenedFile> files)
    {
        var agrees = manifest.Files.Count == files.Count && manifest.Files.Zip(files).All(p =>
            p.First.Name == p.Second.OriginalName && p.First.ContentType == p.Second.ContentType
            && p.First.Size == p.Second.Size && p.First.Sha256 == p.Second.Sha256Hex);
        if (!agrees) throw new SealedFormatException("malformed contents: the manifest disagrees with the files");
    }

    private static string ReadText(Stream plain, int max, string what)
    {
        var bytes = ReadLengthPrefixed(plain, max, what);
        try { return SealedFormat.StrictUtf8.GetString(bytes); }
        catch (DecoderFallbackException) { throw new SealedFormatException($"malformed contents: {what} is not UTF-8"); }
    }

    private static byte[] ReadLengthPrefixed(Stream plain, int max, string what)
    {
        var bytes = new byte[ReadLength(plain, (uint)max, what)];
        ReadExactly(plain, bytes);
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
        file.Flush(flushToDisk: true);
    }

    /// <summary>The journalist's record of what was opened: original names beside the names written.</summary>
    private static byte[] DescribeOpened(Manifest manifest, List<OpenedFile> files) =>
        JsonSerializer.SerializeToUtf8Bytes(new
        {
            reference = manifest.Reference,
            receivedAt = manifest.ReceivedAt,
            message = MessageFileName,
            files = files.Select(f => new { originalName = f.OriginalName, savedAs = f.SafeName, contentType = f.ContentType, size = f.Size, sha256 = f.Sha256Hex }),
        }, new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });

    /// <summary>Renames the verified working folder to "NAME", or "NAME (2)"...: never onto anything existing.</summary>
    private static string MoveIntoView(string working, string outputDirectory, string name)
    {
        for (var i = 1; ; i++)
        {
            var candidate = Path.Combine(outputDirectory, i == 1 ? name : SafeFileName.Shorten(name, SafeFileName.MaxBytes - 8) + $" ({i})");
            if (Path.Exists(candidate)) continue;
            try
            {
                Directory.Move(working, candidate);
                return candidate;
            }
            catch (IOException) when (Path.Exists(candidate)) { }   // lost a race: try the next name
        }
    }
}
