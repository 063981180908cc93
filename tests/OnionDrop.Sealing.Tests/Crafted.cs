using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace OnionDrop.Sealing.Tests;

/// <summary>
/// Plaintext records written by hand, then sealed by the real sealer (its raw knobs): what a hostile source
/// behind a compromised server could send. The manifest is whatever JSON the test gives.
/// </summary>
internal sealed class Crafted
{
    private readonly MemoryStream _plain = new();
    private readonly List<object> _files = [];

    public Crafted File(string name, byte[] data, string contentType = "text/plain")
    {
        Record(SealedFormat.RecordFileStart);
        Text(name);
        Text(contentType);
        if (data.Length > 0)
        {
            Record(SealedFormat.RecordFileData);
            U32((uint)data.Length);
            _plain.Write(data);
        }
        Record(SealedFormat.RecordFileEnd);
        Span<byte> size = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(size, (ulong)data.Length);
        _plain.Write(size);
        var sha = SHA256.HashData(data);
        _plain.Write(sha);
        _files.Add(new { name, contentType, size = data.Length, sha256 = Convert.ToHexStringLower(sha) });
        return this;
    }

    /// <summary>The manifest a correct sealer would write for the files so far.</summary>
    public string Manifest(string reference = "crafted-1", string message = "") =>
        JsonSerializer.Serialize(new { format = "oniondrop-manifest-1", reference, receivedAt = "2026-11-23T12:34Z", message, files = _files });

    /// <param name="withManifest">false: the stream ends after the files, with no manifest record</param>
    public async Task<byte[]> SealAsync(RecipientPublicKey to, string? manifestJson = null, bool withManifest = true)
    {
        if (withManifest)
        {
            var json = Encoding.UTF8.GetBytes(manifestJson ?? Manifest());
            Record(SealedFormat.RecordManifest);
            U32((uint)json.Length);
            _plain.Write(json);
        }
        var output = new MemoryStream();
        await using (var sealer = new SubmissionSealer(output, [to]))
        {
            await sealer.AppendRawAsync(_plain.ToArray());
            await sealer.CompleteRawAsync();
        }
        return output.ToArray();
    }

    private void Record(byte type) => _plain.WriteByte(type);

    private void Text(string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        U32((uint)b.Length);
        _plain.Write(b);
    }

    private void U32(uint n)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, n);
        _plain.Write(b);
    }
}
