using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using OnionDrop.Sealing.Interop;

namespace OnionDrop.Bench;

/// <summary>The machine's own limits every benchmark prints its figures beside, measured in the same run.</summary>
public static partial class MachineLimits
{
    /// <summary>
    /// The disk's sequential write speed as the issues define it: dd bs=1M with conv=fdatasync (or, with
    /// <paramref name="fdatasync"/> false, the page cache's own write speed).
    /// </summary>
    public static async Task<double> DiskMBpsAsync(string file, int sizeMiB, bool fdatasync = true)
    {
        var psi = new ProcessStartInfo("dd", ["if=/dev/zero", $"of={file}", "bs=1M", $"count={sizeMiB}", .. fdatasync ? new[] { "conv=fdatasync" } : []])
            { RedirectStandardError = true, RedirectStandardOutput = true };
        using var p = Process.Start(psi)!;
        var stderr = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        File.Delete(file);
        var m = DdLine().Match(stderr);
        if (p.ExitCode != 0 || !m.Success) throw new InvalidOperationException("dd failed: " + stderr);
        return double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) / double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture) / 1e6;
    }

    [GeneratedRegex(@"^(\d+) bytes.*copied, ([\d.]+) s", RegexOptions.Multiline)]
    private static partial Regex DdLine();

    /// <summary>libsodium's secretstream alone, 64 KiB chunks in memory: the crypto limit the issues name.</summary>
    public static double RawSecretStreamMBps(long bytes)
    {
        var key = new byte[SecretStream.KeyBytes];
        var header = new byte[SecretStream.HeaderBytes];
        var plain = new byte[64 * 1024];
        var cipher = new byte[64 * 1024 + SecretStream.ABytes];
        Random.Shared.NextBytes(plain);
        using var s = SecretStream.InitPush(key, header);
        var sw = Stopwatch.StartNew();
        for (long done = 0; done < bytes; done += plain.Length) s.Push(plain, cipher, default, SecretStream.TagMessage);
        return bytes / sw.Elapsed.TotalSeconds / 1e6;
    }

    /// <summary>SHA-256 alone (OpenSSL through .NET), 64 KiB at a time in memory: paid once or twice per byte on every path.</summary>
    public static double Sha256MBps(long bytes)
    {
        var data = new byte[64 * 1024];
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        var sw = Stopwatch.StartNew();
        for (long done = 0; done < bytes; done += data.Length) hash.AppendData(data);
        hash.GetHashAndReset();
        return bytes / sw.Elapsed.TotalSeconds / 1e6;
    }

    /// <summary>
    /// The roofline: the most a pipeline can reach here when every byte must pass through each of
    /// <paramref name="stepsMBps"/> (each measured alone, one core), with every core kept busy and nothing
    /// else to do. One stream's steps each run on one core at a time, so the slowest step bounds it too.
    /// Printed beside a target so that a reader can tell a slow pipeline from an unreachable target.
    /// </summary>
    public static double CeilingMBps(params double[] stepsMBps) =>
        Math.Min(Environment.ProcessorCount / stepsMBps.Sum(s => 1 / s), stepsMBps.Min());

    /// <summary>
    /// Writes every dirty page back (sync(1)), so that one run's writes are not written back during the next
    /// one's timing: OnionShare leaves its uploads in the page cache (about 1 GiB dirty after 64 x 16 MiB).
    /// </summary>
    public static async Task FlushDirtyPagesAsync()
    {
        using var p = Process.Start(new ProcessStartInfo("sync"))!;
        await p.WaitForExitAsync();
    }

    /// <summary>The machine's CPU time so far, busy and in all (/proc/stat, every core), for <see cref="CoresBusySince"/>.</summary>
    public static (long Busy, long Total) CpuTicks()
    {
        var ticks = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries)[1..9].Select(long.Parse).ToArray();
        var idle = ticks[3] + ticks[4];   // idle and iowait
        return (ticks.Sum() - idle, ticks.Sum());
    }

    /// <summary>How many cores were busy on average since <paramref name="before"/>: whoever used them.</summary>
    public static double CoresBusySince((long Busy, long Total) before)
    {
        var now = CpuTicks();
        return now.Total == before.Total ? 0 : Environment.ProcessorCount * (double)(now.Busy - before.Busy) / (now.Total - before.Total);
    }
}
